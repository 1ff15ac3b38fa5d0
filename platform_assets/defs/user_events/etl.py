"""The user-events ETL in Spark: cleaning and per-user daily features.

Inputs and outputs are pandas frames (the lake IO manager reads and writes them as partitions of Iceberg
tables; a day is small, so a pandas frame per day is fine); the work between is Spark, so the same functions
run on a local Spark or a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

EVENT_TYPES = ("view", "click", "purchase", "signup")
RAW_COLUMNS = ["user_id", "event_time", "event_type", "amount", "duration", "click_count", "session_id"]
REJECT_REASONS = (
    "missing_user_id",
    "invalid_user_id",
    "missing_event_time",
    "unparseable_event_time",
    "invalid_event_type",
    "invalid_number",
    "negative_amount",
    "duplicate_event",
)
WINDOW_DAYS = 7
SCALED_INPUTS = ["avg_amount_1d", "avg_duration_1d", "clicks_1d"]
# Integer counts of the feature table: zero, never null, for a user with no activity.
COUNT_FEATURES = (
    "total_purchases",
    "events_1d",
    "sessions_1d",
    "sessions_7d",
    "views_7d",
    "clicks_7d",
    "purchases_7d",
)


@dataclass(frozen=True)
class CleanedEvents:
    """Cleaning output: every raw row is in exactly one of the two frames."""

    cleaned: pd.DataFrame
    quarantine: pd.DataFrame


def day_end(day: date) -> datetime:
    """The feature timestamp of a day: its last second, in UTC."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)


def _strings(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for name in out.columns:
        if name != "_source_line":
            out[name] = out[name].astype(object).where(out[name].notna(), None)
    return out


def clean_events(spark: SparkSession, raw: pd.DataFrame, day: date) -> CleanedEvents:
    """Type and validate one day's delivered events; duplicates on (user_id, event_time) keep the first."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    schema = T.StructType(
        [T.StructField(name, T.StringType()) for name in raw.columns if name != "_source_line"]
        + [T.StructField("_source_line", T.LongType()), T.StructField("_ordinal", T.LongType())]
    )
    prepared = _strings(raw)
    prepared["_ordinal"] = range(len(prepared))
    columns = [f.name for f in schema.fields]
    frame = spark.createDataFrame(prepared[columns], schema=schema)

    def blank(name: str):  # noqa: ANN202 - a Spark column
        return F.col(name).isNull() | (F.trim(F.col(name)) == "")

    def number(name: str, kind: str):  # noqa: ANN202
        return F.expr(f"try_cast(trim({name}) as {kind})")

    typed = frame.select(
        "*",
        number("user_id", "bigint").alias("_user_id"),
        F.expr("try_cast(trim(event_time) as timestamp)").alias("_event_time"),
        number("amount", "double").alias("_amount"),
        number("duration", "double").alias("_duration"),
        number("click_count", "bigint").alias("_click_count"),
    )
    bad_number = F.lit(False)
    for name in ("amount", "duration", "click_count"):
        bad_number = bad_number | (~blank(name) & F.col(f"_{name}").isNull())
    reason = (
        F.when(blank("user_id"), "missing_user_id")
        .when(F.col("_user_id").isNull(), "invalid_user_id")
        .when(blank("event_time"), "missing_event_time")
        .when(F.col("_event_time").isNull(), "unparseable_event_time")
        .when(
            ~F.lower(F.trim(F.col("event_type"))).isin(*EVENT_TYPES) | blank("event_type"),
            "invalid_event_type",
        )
        .when(bad_number, "invalid_number")
        .when(F.col("_amount") < 0, "negative_amount")
    )
    typed = typed.withColumn("reject_reason", reason)
    valid = F.col("reject_reason").isNull()
    window = Window.partitionBy("_user_id", "_event_time", valid).orderBy("_ordinal")
    typed = typed.withColumn("_rank", F.row_number().over(window)).withColumn(
        "reject_reason",
        F.when(valid & (F.col("_rank") > 1), "duplicate_event").otherwise(F.col("reject_reason")),
    )
    result = typed.orderBy("_ordinal").toPandas()

    rejected = result["reject_reason"].notna().to_numpy()
    quarantine = raw.loc[rejected].copy()
    quarantine["reject_reason"] = result.loc[rejected, "reject_reason"].to_numpy()
    quarantine = quarantine.reset_index(drop=True)

    kept = result.loc[~rejected]
    cleaned = pd.DataFrame(
        {
            "user_id": kept["_user_id"].astype("int64").to_numpy(),
            "event_time": pd.to_datetime(kept["_event_time"]).dt.tz_localize("UTC").to_numpy(),
            "event_type": kept["event_type"].str.strip().str.lower().to_numpy(),
            "amount": kept["_amount"].fillna(0.0).astype("float64").to_numpy(),
            "duration": kept["_duration"].fillna(0.0).astype("float64").to_numpy(),
            "click_count": kept["_click_count"].fillna(0).astype("int64").to_numpy(),
            "session_id": kept["session_id"].to_numpy(),
            "_source_file": kept["_source_file"].to_numpy(),
            "_source_line": kept["_source_line"].astype("int64").to_numpy(),
        }
    )
    cleaned["event_time"] = pd.to_datetime(cleaned["event_time"], utc=True)
    cleaned["is_late"] = cleaned["event_time"].dt.date < day
    return CleanedEvents(cleaned=cleaned, quarantine=quarantine)


def compute_user_stats(
    spark: SparkSession, day: date, window_events: dict[str, pd.DataFrame], previous: pd.DataFrame | None
) -> pd.DataFrame:
    """Per-user features as of the end of `day`.

    `window_events` holds the cleaned partitions of the last WINDOW_DAYS days (by delivery day); `previous`
    is yesterday's feature partition, which carries the lifetime totals forward, so each day reads only a
    week of events however long the history is.
    """
    from pyspark.ml.feature import StandardScaler, VectorAssembler
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    end = day_end(day)
    frames = [frame.assign(_partition=key) for key, frame in sorted(window_events.items()) if len(frame)]
    events = _events_frame(spark, frames)
    # The same event delivered twice (late, or re-sent another day) counts once: on its first delivery.
    first = Window.partitionBy("user_id", "event_time").orderBy("_partition", "_source_file", "_source_line")
    events = (
        events.withColumn("_rank", F.row_number().over(first))
        .where(F.col("_rank") == 1)
        .where(F.col("event_time") <= F.lit(end))
    )
    new_today = events.where(F.col("_partition") == day.isoformat())
    purchases_today = (
        new_today.where(F.col("event_type") == "purchase")
        .groupBy("user_id")
        .agg(
            F.count("*").alias("purchases_new"),
            F.sum("amount").alias("spent_new"),
            F.max("event_time").alias("last_purchase_new"),
        )
    )
    if previous is not None and len(previous):
        state = spark.createDataFrame(
            previous[["user_id", "total_purchases", "total_spent", "last_purchase_at"]].astype(
                {"user_id": "int64"}
            )
        )
    else:
        state = spark.createDataFrame(
            [], "user_id bigint, total_purchases bigint, total_spent double, last_purchase_at timestamp"
        )
    totals = state.join(purchases_today, "user_id", "full_outer").select(
        "user_id",
        (F.coalesce("total_purchases", F.lit(0)) + F.coalesce("purchases_new", F.lit(0))).alias(
            "total_purchases"
        ),
        (F.coalesce("total_spent", F.lit(0.0)) + F.coalesce("spent_new", F.lit(0.0))).alias("total_spent"),
        F.greatest("last_purchase_at", "last_purchase_new").alias("last_purchase_at"),
    )
    week_start = datetime.combine(day - timedelta(days=WINDOW_DAYS - 1), time(0), tzinfo=UTC)
    week = events.where(F.col("event_time") >= F.lit(week_start))
    hour = F.hour("event_time")
    activity = week.groupBy("user_id").agg(
        F.countDistinct("session_id").alias("sessions_7d"),
        F.sum(F.when(F.col("event_type") == "view", 1).otherwise(0)).alias("views_7d"),
        F.sum(F.when(F.col("event_type") == "click", 1).otherwise(0)).alias("clicks_7d"),
        F.sum(F.when(F.col("event_type") == "purchase", 1).otherwise(0)).alias("purchases_7d"),
        F.avg("duration").alias("avg_duration_7d"),
        F.avg(F.when(hour < 6, 1.0).otherwise(0.0)).alias("night_share_7d"),
        F.avg(F.when((hour >= 6) & (hour < 12), 1.0).otherwise(0.0)).alias("morning_share_7d"),
        F.avg(F.when((hour >= 12) & (hour < 18), 1.0).otherwise(0.0)).alias("afternoon_share_7d"),
        F.avg(F.when(hour >= 18, 1.0).otherwise(0.0)).alias("evening_share_7d"),
        F.avg(F.when(F.dayofweek("event_time").isin(1, 7), 1.0).otherwise(0.0)).alias("weekend_share_7d"),
    )
    today = events.where(F.to_date("event_time") == F.lit(day))
    daily = today.groupBy("user_id").agg(
        F.count("*").alias("events_1d"),
        F.countDistinct("session_id").alias("sessions_1d"),
        F.avg(F.when(F.col("event_type") == "purchase", F.col("amount"))).alias("avg_amount_1d"),
        F.avg("duration").alias("avg_duration_1d"),
        F.sum("click_count").cast("double").alias("clicks_1d"),
    )
    scaled = _standardize(
        daily.fillna(0.0, subset=SCALED_INPUTS), VectorAssembler, StandardScaler, vector_to_array
    )

    stats = (
        totals.join(activity, "user_id", "full_outer")
        .join(scaled, "user_id", "left")
        .select(
            "*",
            F.datediff(F.lit(day), F.to_date("last_purchase_at")).cast("bigint").alias("last_purchase_days"),
        )
        .fillna(
            0,
            subset=list(COUNT_FEATURES),
        )
        .fillna(0.0, subset=["total_spent"])
    )
    stats = stats.withColumn(
        "avg_purchase_amount",
        F.when(F.col("total_purchases") > 0, F.col("total_spent") / F.col("total_purchases")).otherwise(
            F.lit(0.0)
        ),
    ).withColumn(
        "user_segment",
        F.when(F.col("total_purchases") == 0, "new")
        .when(F.col("last_purchase_days") > 30, "dormant")
        .when((F.col("total_purchases") >= 10) | (F.col("total_spent") >= 1000), "vip")
        .when(F.col("total_purchases") >= 3, "regular")
        .otherwise("occasional"),
    )
    result = stats.orderBy("user_id").toPandas()
    return _feature_frame(result, end)


def _events_frame(spark: SparkSession, frames: list[pd.DataFrame]) -> DataFrame:
    columns = ["user_id", "event_time", "event_type", "amount", "duration", "click_count", "session_id"]
    lineage = ["_source_file", "_source_line", "_partition"]
    schema = (
        "user_id bigint, event_time timestamp, event_type string, amount double, duration double, "
        "click_count bigint, session_id string, _source_file string, _source_line bigint, _partition string"
    )
    if not frames:
        return spark.createDataFrame([], schema)
    combined = pd.concat([f[columns + lineage] for f in frames], ignore_index=True)
    combined["event_time"] = pd.to_datetime(combined["event_time"], utc=True)
    return spark.createDataFrame(combined, schema=schema)


def _standardize(daily: DataFrame, assembler_cls, scaler_cls, to_array) -> DataFrame:  # noqa: ANN001
    """The scaler step: z-scores of the day's activity across the users active that day."""
    from pyspark.sql import functions as F

    if daily.limit(2).count() < 2:
        return daily.select("user_id", *SCALED_INPUTS, *[F.lit(0.0).alias(f"{n}_z") for n in SCALED_INPUTS])
    assembled = assembler_cls(inputCols=SCALED_INPUTS, outputCol="_raw").transform(daily)
    model = scaler_cls(inputCol="_raw", outputCol="_scaled", withMean=True, withStd=True).fit(assembled)
    scaled = model.transform(assembled).withColumn("_z", to_array("_scaled"))
    return scaled.select(
        "user_id",
        "events_1d",
        "sessions_1d",
        *SCALED_INPUTS,
        *[
            F.coalesce(F.nanvl(F.col("_z")[i], F.lit(0.0)), F.lit(0.0)).alias(f"{name}_z")
            for i, name in enumerate(SCALED_INPUTS)
        ],
    )


FEATURE_COLUMNS = [
    "user_id",
    "event_timestamp",
    "created_timestamp",
    "total_purchases",
    "total_spent",
    "avg_purchase_amount",
    "last_purchase_at",
    "last_purchase_days",
    "user_segment",
    "events_1d",
    "sessions_1d",
    "sessions_7d",
    "views_7d",
    "clicks_7d",
    "purchases_7d",
    "avg_duration_7d",
    "night_share_7d",
    "morning_share_7d",
    "afternoon_share_7d",
    "evening_share_7d",
    "weekend_share_7d",
    "avg_amount_1d_z",
    "avg_duration_1d_z",
    "clicks_1d_z",
]


def _feature_frame(result: pd.DataFrame, end: datetime) -> pd.DataFrame:
    frame = result.copy()
    # The feature row describes the user as of the end of the day; computing it again gives the same row.
    frame["event_timestamp"] = pd.Timestamp(end)
    frame["created_timestamp"] = pd.Timestamp(end)
    frame["last_purchase_at"] = pd.to_datetime(frame["last_purchase_at"]).dt.tz_localize("UTC")
    ints = ["user_id", *COUNT_FEATURES]
    for name in ints:
        frame[name] = frame[name].fillna(0).astype("int64")
    frame["last_purchase_days"] = frame["last_purchase_days"].astype("Int64")
    floats = [
        c
        for c in FEATURE_COLUMNS
        if c
        not in ints
        + ["event_timestamp", "created_timestamp", "last_purchase_at", "last_purchase_days", "user_segment"]
    ]
    for name in floats:
        frame[name] = frame[name].astype("float64")
    frame["user_segment"] = frame["user_segment"].astype(str)
    return frame[FEATURE_COLUMNS].reset_index(drop=True)
