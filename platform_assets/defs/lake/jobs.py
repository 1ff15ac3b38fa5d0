"""The lake maintenance job: an operation over every table in the catalog, not an asset.

An op rather than an asset because maintenance produces no data: it acts on every table of the catalog,
including tables no asset of this code location defines (a registered dataset's table per partition, a table
of another deployment sharing the catalog), and rows never change, so there is no lineage to show. Each
table's result is logged and reported in the op's output metadata.
"""

from typing import Any

import dagster as dg
from pydantic import Field

from platform_assets.lib.lake import LakeIOManager


class LakeMaintenanceConfig(dg.Config):
    """What the maintenance does (defaults: the settings)."""

    older_than_days: float | None = Field(
        default=None,
        description="Expire snapshots older than this many days (default: PLATFORM_SNAPSHOT_RETENTION_DAYS, 7). "
        "Tagged snapshots and branch heads are always kept.",
    )
    small_file_mib: float = Field(default=32, description="A data file under this size (MiB) is small.")
    small_files_limit: int = Field(
        default=4, description="A partition with more small data files than this is rewritten as one file."
    )
    tables: list[str] = Field(
        default_factory=list, description="Tables to maintain, as <layer>/<name>; empty: every lake table."
    )


@dg.op(
    name="lake_maintenance",
    out=dg.Out(dg.Nothing),
    description="Expire old snapshots and compact small files of every lake table.",
)
def lake_maintenance(
    context: dg.OpExecutionContext,
    config: LakeMaintenanceConfig,
    lake_io_manager: dg.ResourceParam[LakeIOManager],
) -> dg.Output:
    """Maintain each table; one that fails does not stop the others, but fails the step at the end."""
    from platform_assets.lake import maintain, tables

    # The IO manager's catalog: the same catalog and lake the deployment's assets write to.
    catalog = lake_io_manager.catalog()
    keys = config.tables or tables(catalog)
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for key in keys:
        try:
            (report,) = maintain(
                [key],
                older_than_days=config.older_than_days,
                small_file_bytes=int(config.small_file_mib * 1024 * 1024),
                small_files_limit=config.small_files_limit,
                run_id=context.run_id,
                catalog=catalog,
                log=context.log.info,
            )
        except Exception as err:  # pyiceberg and the stores raise many types; the message names the table
            problems.append(f"{key}: {type(err).__name__}: {err}")
            context.log.error(problems[-1])
            continue
        rows.append(report.as_dict())
    table = "\n".join(
        [
            "| table | snapshots | expired | files before | files after | compacted | skipped |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {r['table']} | {r['snapshots_before']} | {r['snapshots_expired']} | {r['files_before']} | "
                f"{r['files_after']} | {', '.join(r['partitions_compacted']) or '-'} | "
                f"{'; '.join(r['skipped']) or '-'} |"
                for r in rows
            ),
        ]
    )
    metadata = {
        "tables": len(rows),
        "snapshots_expired": sum(r["snapshots_expired"] for r in rows),
        "files_before": sum(r["files_before"] for r in rows),
        "files_after": sum(r["files_after"] for r in rows),
        "report": dg.MetadataValue.md(table),
        "per_table": dg.MetadataValue.json(rows),
    }
    if problems:
        raise dg.Failure(
            description=problems[0],
            metadata={**metadata, "problems": dg.MetadataValue.json(problems)},
        )
    return dg.Output(None, metadata=metadata)


@dg.job(
    name="lake_maintenance_job",
    description="Expire lake snapshots older than the retention (tags kept) and compact small files, in every "
    "table of the catalog (see lake_maintenance_schedule).",
    tags={"platform/domain": "lake"},
)
def lake_maintenance_job() -> None:
    lake_maintenance()
