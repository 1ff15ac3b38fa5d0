"""The Alldata side: a sensor that turns registrations in the metadata center into runs."""

import dagster as dg

from platform_assets.defs.registrations.assets import VERSION_TAG
from platform_assets.defs.registrations.jobs import registered_datasets_job
from platform_assets.defs.registrations.partitions import registered_datasets
from platform_assets.defs.registrations.resources import MetadataCenterResource

PAGE_SIZE = 100


def is_own_publication(item: dict) -> bool:
    """Registrations this platform made itself (training-ready outputs: a registered dataset's publication, or a
    version with a manifest) are not processed again."""
    metadata = (item.get("payload") or {}).get("metadata") or {}
    produced_here = metadata.get("source_dataset_id") or metadata.get("manifest")
    return bool(produced_here and metadata.get("dagster_run_id"))


@dg.sensor(
    name="alldata_registrations_sensor",
    job=registered_datasets_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Polls the metadata center's registration log after the last seq handled; one partition per "
    "dataset_id, one run per new version (run_key dataset_id:version).",
)
def alldata_registrations_sensor(
    context: dg.SensorEvaluationContext, metadata_center: MetadataCenterResource
) -> dg.SensorResult | dg.SkipReason:
    """The cursor is the last seq handled; it only moves once the runs for those registrations are requested."""
    from platform_assets.metadata_center.client import MetadataCenterUnavailable

    after = int(context.cursor or 0)
    client = metadata_center.client()
    try:
        page = client.list(after=after, limit=PAGE_SIZE)
    except MetadataCenterUnavailable as err:
        return dg.SkipReason(
            f"metadata center at {client.url} is unreachable ({err}); cursor stays at seq {after}"
        )
    if not page.items:
        return dg.SkipReason(f"no registrations after seq {after}")
    items = [item for item in page.items if not is_own_publication(item)]
    known = set(context.instance.get_dynamic_partitions(registered_datasets.name))
    new_ids = sorted({item["dataset_id"] for item in items} - known)
    run_requests = [
        dg.RunRequest(
            partition_key=item["dataset_id"],
            run_key=f"{item['dataset_id']}:{item['version']}",
            tags={VERSION_TAG: str(item["version"]), "platform/registration_seq": str(item["seq"])},
        )
        for item in items
    ]
    context.log.info(
        f"seq {after + 1}..{page.next_after}: {len(run_requests)} run(s), {len(page.items) - len(items)} own publication(s) skipped"
    )
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[registered_datasets.build_add_request(new_ids)] if new_ids else [],
        cursor=str(page.next_after),
    )
