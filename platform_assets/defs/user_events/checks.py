"""Checks of the user-events layers: suites per layer, row accounting, and the feature table's contract."""

from platform_assets.defs.user_events.assets import CLEANED, QUARANTINE, RAW, USER_STATS
from platform_assets.defs.user_events.etl import EVENT_TYPES, RAW_COLUMNS, REJECT_REASONS
from platform_assets.defs.user_events.partitions import daily
from platform_assets.lib import quality as q

RAW_SUITE = q.Suite(
    name="raw_expectations",
    description="The delivery has rows, the expected columns, and few missing users or times (< 5 %).",
    rules=[
        q.row_count_between(min_value=1),
        *[q.column_exists(column) for column in RAW_COLUMNS],
        q.null_ratio_below("user_id", 0.05),
        q.null_ratio_below("event_time", 0.05),
    ],
)
CLEANED_SUITE = q.Suite(
    name="cleaned_contract",
    blocking=True,
    description="What feature computation relies on; blocking.",
    rules=[
        q.row_count_between(min_value=1, severity="critical"),
        *[q.not_null(c, severity="critical") for c in ("user_id", "event_time", "event_type")],
        q.in_set("event_type", EVENT_TYPES),
        q.between("amount", 0, None),
        q.between("duration", 0, None),
        q.between("click_count", 0, None),
    ],
)
QUARANTINE_SUITE = q.Suite(
    name="quarantine_expectations",
    description="Every rejected event has a known reason.",
    rules=[q.not_null("reject_reason", severity="critical"), q.in_set("reject_reason", REJECT_REASONS)],
)
STATS_SUITE = q.Suite(
    name="user_stats_contract",
    blocking=True,
    description="One row per user, sane totals and a known segment; blocking: nothing bad reaches Feast.",
    rules=[
        q.row_count_between(min_value=1, severity="critical"),
        q.not_null("user_id", severity="critical"),
        q.unique("user_id"),
        q.not_null("event_timestamp", severity="critical"),
        q.between("total_purchases", 0, None),
        q.between("avg_purchase_amount", 0, None),
        q.between("last_purchase_days", 0, None),
        q.in_set("user_segment", ["new", "occasional", "regular", "vip", "dormant"]),
        q.between("weekend_share_7d", 0, 1),
    ],
)

raw_expectations = q.suite_check(RAW, RAW_SUITE, partitions_def=daily)
cleaned_contract = q.suite_check(CLEANED, CLEANED_SUITE, partitions_def=daily)
quarantine_expectations = q.suite_check(QUARANTINE, QUARANTINE_SUITE, partitions_def=daily)
user_stats_contract = q.suite_check(USER_STATS, STATS_SUITE, partitions_def=daily)


row_accounting = q.row_accounting_check(RAW, CLEANED, QUARANTINE, partitions_def=daily)
