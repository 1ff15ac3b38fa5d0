"""Checks on the published versions: the version a materialization recorded is intact and can be rebuilt."""

import dagster as dg

from platform_assets.defs.training.assets import PUBLISHED_REVIEWS_CORPUS, PUBLISHED_TRAINING_SET

DESCRIPTION = (
    "The version the latest materialization published: its file holds the recorded rows and content digest, and "
    "every input its manifest names still has that snapshot or Lance version, tagged with the manifest's pin."
)


def latest_version_is_intact(
    context: dg.AssetCheckExecutionContext, asset_key: dg.AssetKey
) -> dg.AssetCheckResult:
    """Compare what the asset's latest materialization recorded with the version's storage and inputs (the
    parquet footer only, never the rows), without the metadata center."""
    import pyarrow.parquet as pq

    from platform_assets.lib.dataset_versions import pinned_inputs_missing
    from platform_assets.lib.lake import lake_path
    from platform_assets.lib.published import DIGEST_KEY, PART_FILE

    event = context.instance.get_latest_materialization_event(asset_key)
    if event is None or event.asset_materialization is None:
        return dg.AssetCheckResult(
            passed=False, description=f"{asset_key.to_user_string()} has no materialization"
        )
    recorded = {key: value.value for key, value in event.asset_materialization.metadata.items()}
    directory = str(recorded["dagster/uri"])
    part = (
        lake_path(directory.removeprefix("file://") if directory.startswith("file://") else directory)
        / PART_FILE
    )
    problems = []
    try:
        with part.open("rb") as handle:
            footer = pq.read_metadata(handle)
    except FileNotFoundError:
        return dg.AssetCheckResult(passed=False, description=f"{directory}: the version's file is missing")
    if footer.num_rows != recorded["dagster/row_count"]:
        problems.append(
            f"the file holds {footer.num_rows} rows, the materialization recorded {recorded['dagster/row_count']}"
        )
    if (footer.metadata or {}).get(DIGEST_KEY, b"").decode() != recorded["content_sha256"]:
        problems.append("the file's content digest differs from the recorded content_sha256")
    problems += pinned_inputs_missing(
        {"inputs": recorded["manifest/inputs"], "pin": recorded.get("manifest/pin")}
    )
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems)
        or f"version {recorded['version']} is intact and its inputs are pinned",
        metadata={"version": recorded["version"], "rows": footer.num_rows, "dagster/uri": directory},
    )


@dg.asset_check(asset=PUBLISHED_REVIEWS_CORPUS, name="version_intact", description=DESCRIPTION)
def reviews_corpus_version_intact(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return latest_version_is_intact(context, PUBLISHED_REVIEWS_CORPUS)


@dg.asset_check(asset=PUBLISHED_TRAINING_SET, name="version_intact", description=DESCRIPTION)
def training_set_version_intact(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return latest_version_is_intact(context, PUBLISHED_TRAINING_SET)
