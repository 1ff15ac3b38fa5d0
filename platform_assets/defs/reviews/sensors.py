"""Sensors of the reviews domain: a run per delivery (landing file) that is new or whose content changed, and a
re-calibration of the near-duplicate threshold when the model or the data changed."""

import hashlib
import json
from pathlib import Path

import dagster as dg

from platform_assets.defs.reviews.assets import EMBEDDED, POOL_LIMITS
from platform_assets.defs.reviews.calibration import CALIBRATION
from platform_assets.defs.reviews.jobs import curation_calibration_job, reviews_job
from platform_assets.defs.reviews.partitions import review_deliveries
from platform_assets.lib.config import get_settings
from platform_assets.lib.instance import ensure_pool_limits
from platform_assets.lib.landing import display_name, list_landing_files, scan_landing
from platform_assets.lib.metadata import latest_materialization

DOMAIN = "reviews"
HASH_BLOCK_BYTES = 8 * 1024 * 1024
# The cursor's entry of files that are not deliveries (with the reason), next to one entry per delivery.
IGNORED = "__ignored__"


def content_digest(path: Path) -> str:
    """The sha256 of a file's bytes, read in blocks (a delivery can be gigabytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def delivery_digests(landing: Path, known: dict[str, list]) -> dict[str, list]:
    """{delivery: [size, mtime_ns, sha256]} of every readable landing file; a file whose size and modification
    time are those in `known` is not read again."""
    files, _ = list_landing_files(landing)
    digests: dict[str, list] = {}
    for path in files:
        key = display_name(path.relative_to(landing))
        stat = path.stat()
        previous = known.get(key)
        if previous and previous[0] == stat.st_size and previous[1] == stat.st_mtime_ns:
            digests[key] = previous
        else:
            digests[key] = [stat.st_size, stat.st_mtime_ns, content_digest(path)]
    return digests


@dg.sensor(
    job=reviews_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs reviews_job for each file in landing/reviews that is new or whose content changed: one "
    "partition per delivery, run_key delivery:sha256, so a re-delivered unchanged file never runs again.",
)
def reviews_landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """One run request per delivery, keyed on its content; Dagster drops run keys it has already seen.

    The cursor keeps each file's size, modification time and digest, so only new or touched files are read.
    """
    landing = get_settings().landing_dir_for(DOMAIN)
    known = json.loads(context.cursor) if context.cursor else {}
    ignored_before = known.pop(IGNORED, {})
    digests = delivery_digests(landing, known)
    # Files that are not deliveries (a name that is not UTF-8, a link out of the landing directory, …) are
    # never read; say why, once each time the list changes.
    ignored = {display_name(p.relative_to(landing)): why for p, why in scan_landing(landing)[1].items()}
    if ignored and ignored != ignored_before:
        context.log.warning(f"landing/reviews files that are not deliveries: {ignored}")
    if not digests:
        return dg.SkipReason(f"no review files under {landing}")
    instance = context.instance
    existing = set(instance.get_dynamic_partitions(review_deliveries.name)) if instance is not None else set()
    if instance is not None:
        # The runs it requests clean one delivery at a time (the cleaning's pool), whatever the run queue allows.
        ensure_pool_limits(instance, POOL_LIMITS)
    new_keys = sorted(set(digests) - existing)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                partition_key=key,
                run_key=f"{key}:{digest}",
                tags={"platform/trigger": "landing", "platform/delivery_sha256": digest},
            )
            for key, (_, _, digest) in sorted(digests.items())
        ],
        dynamic_partitions_requests=[review_deliveries.build_add_request(new_keys)] if new_keys else [],
        cursor=json.dumps({**digests, IGNORED: ignored}, sort_keys=True),
    )


# Re-calibrate once the vector table has this many times the rows it had at the last calibration.
CALIBRATION_GROWTH = 2.0


@dg.sensor(
    job=curation_calibration_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs curation_calibration_job when the near-duplicate threshold is due: never calibrated, the "
    f"vectors are now of another embedding space (model or backend), or the vector table has grown {CALIBRATION_GROWTH:g}x "
    "since the last calibration.",
)
def curation_calibration_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Compare the latest embedded/reviews materialization (its vector space and table rows) with what the
    latest calibration recorded; both are read from the instance, nothing is computed."""
    latest_embedded = latest_materialization(context.instance, EMBEDDED)
    embedded = latest_embedded[0] if latest_embedded else None
    if embedded is None or "embedding_space" not in embedded:
        return dg.SkipReason("nothing embedded yet: the calibration needs the stored reviews")
    space, rows = str(embedded["embedding_space"]), int(embedded.get("lancedb/table_rows", 0))
    latest_calibration = latest_materialization(context.instance, CALIBRATION)
    calibration = latest_calibration[0] if latest_calibration else None
    if calibration is None:
        reason = "never calibrated"
    elif calibration.get("embedding_space") != space:
        reason = f"the vectors are now in {space}, the calibration was made in {calibration.get('embedding_space')}"
    elif rows >= CALIBRATION_GROWTH * max(int(calibration.get("vector_table_rows", 0)), 1):
        reason = (
            f"the vector table has {rows} rows, {calibration.get('vector_table_rows')} at the calibration"
        )
    else:
        return dg.SkipReason(f"the calibration is current ({space}, {rows} rows now)")
    context.log.info(f"calibrating the near-duplicate threshold: {reason}")
    return dg.RunRequest(run_key=f"{space}:{rows}", tags={"curation/calibration_reason": reason[:200]})
