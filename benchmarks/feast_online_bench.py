"""Online feature retrieval latency (target: < 10 ms p99): Feast's SQLite online store, 1 and 100
entities, against a baseline of reading the same rows straight from the same SQLite file.

The ratio is Feast's overhead (request building, deserialising protobuf values, response assembly) over the
storage read itself. Run: `.venv/bin/python -m benchmarks feast_online [--users 5000] [--requests 300]`.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _percentiles(samples: list[float]) -> dict[str, float]:
    values = np.array(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
    }


def _feature_rows(users: int) -> pd.DataFrame:
    from platform_assets.defs.user_events.etl import COUNT_FEATURES, FEATURE_COLUMNS

    rng = np.random.default_rng(7)
    end = pd.Timestamp("2026-01-07 23:59:59", tz="UTC")
    frame = pd.DataFrame({"user_id": np.arange(1001, 1001 + users, dtype="int64")})
    for name in FEATURE_COLUMNS:
        if name in ("user_id",):
            continue
        if name in ("event_timestamp", "created_timestamp"):
            frame[name] = end
        elif name == "last_purchase_at":
            frame[name] = end - pd.Timedelta(days=1)
        elif name == "user_segment":
            frame[name] = rng.choice(["new", "occasional", "regular", "vip"], size=users)
        elif name in (*COUNT_FEATURES, "last_purchase_days"):
            frame[name] = rng.integers(0, 50, size=users).astype("int64")
        else:
            frame[name] = rng.normal(size=users)
    return frame


def run(users: int = 5000, requests: int = 300) -> dict[str, Any]:
    """Measure p50/p99 of get_online_features for 1 and 100 users vs a direct SQLite read of the same keys."""
    data_dir = Path(tempfile.mkdtemp(prefix="feast-bench-"))
    os.environ["PLATFORM_DATA_DIR"] = str(data_dir)
    os.environ.pop("FEAST_ONLINE_STORE", None)
    from platform_assets.defs.features.export import STATS_TABLE, sync_stats_export
    from platform_assets.defs.features.repo import activity_log_path, feature_objects
    from platform_assets.defs.features.store import feature_store
    from platform_assets.lib.config import get_settings
    from platform_assets.lib.lake import open_catalog, write_table

    settings = get_settings()
    # The day's partition of the feature table and Feast's parquet view of it, as the assets write them.
    catalog = open_catalog()
    write_table(catalog, STATS_TABLE, _feature_rows(users), partition_key="2026-01-07")
    sync_stats_export(catalog, settings)
    log_path = Path(activity_log_path(settings))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "user_id": pd.Series(dtype="int64"),
            "last_action": pd.Series(dtype="string"),
            "session_duration": pd.Series(dtype="int64"),
            "page_views_1h": pd.Series(dtype="int64"),
            "event_timestamp": pd.Series(dtype="datetime64[ns, UTC]"),
        }
    ).to_parquet(log_path, index=False)
    store = feature_store(settings)
    store.apply(feature_objects(settings))
    store.materialize(
        pd.Timestamp("2026-01-07", tz="UTC").to_pydatetime(),
        pd.Timestamp("2026-01-08", tz="UTC").to_pydatetime(),
        feature_views=["user_statistics"],
    )

    features = [
        "user_statistics:total_purchases",
        "user_statistics:avg_purchase_amount",
        "user_statistics:user_segment",
        "user_statistics:views_7d",
    ]
    rng = np.random.default_rng(1)
    database = sqlite3.connect(store.config.online_store.path)
    table = next(
        name
        for (name,) in database.execute("select name from sqlite_master where type='table'")
        if name.endswith("user_statistics")
    )
    keys = [key for (key,) in database.execute(f"select distinct entity_key from {table}")]  # noqa: S608 - our own table name
    report: dict[str, Any] = {"users": users, "requests": requests}
    for batch in (1, 100):
        feast_times, sqlite_times = [], []
        for _ in range(requests):
            ids = rng.choice(users, size=batch, replace=False) + 1001
            rows = [{"user_id": int(u)} for u in ids]
            start = time.perf_counter()
            store.get_online_features(features=features, entity_rows=rows).to_dict()
            feast_times.append(time.perf_counter() - start)
            chosen = [keys[int(i)] for i in rng.choice(len(keys), size=batch, replace=False)]
            start = time.perf_counter()
            database.execute(
                f"select entity_key, feature_name, value from {table} where entity_key in ({','.join('?' * batch)})",  # noqa: S608
                chosen,
            ).fetchall()
            sqlite_times.append(time.perf_counter() - start)
        feast, raw = _percentiles(feast_times), _percentiles(sqlite_times)
        report[f"{batch}_entities"] = {
            "feast": feast,
            "baseline_sqlite": raw,
            "ratio_p50": round(statistics.median(feast_times) / statistics.median(sqlite_times), 1),
            "seed_target_p99_ms": 10.0,
        }
    return report


def main(argv: list[str] | None = None) -> int:
    """Print the report as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.users, args.requests), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
