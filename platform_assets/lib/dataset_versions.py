"""Training-ready dataset versions: numbered, immutable, described by a manifest, registered in the metadata center.

A version N of `dataset_id` is one parquet file at `<lake>/published/<dataset_id>/v<N>/` (lib/published.py),
registered as version N in the metadata center, whose registration metadata holds:

- `content_sha256`: the digest of its rows, in order (`published.RowDigest`);
- `manifest` (MANIFEST_KEY):
  - `build`: what was read, in a form `read_build` reads again: a lake table at a snapshot id
    (`{"kind": "lake_table", "table", "snapshot_id", "columns"}`) or a LanceDB table at a version
    (`{"kind": "lancedb_table", "table", "version", "columns"}`);
  - `inputs`: every input's snapshot id (`lake`: `<layer>.<name>` → id as text, 64-bit) or Lance version
    (`lancedb`: table → version), including the inputs of the input (a training set's events and features);
  - `pin`: the tag every input snapshot and Lance version carries, so expiry and clean-up keep them;
  - `code`: the package version and git commit that built it;
  - `feast`: the feature views and the hash of their definitions (when Feast built the rows);
  - `quality`: the latest result of every check on the input asset when it was published, and a quality score;
  - `metrics`: rows, null shares, means of numeric columns, and the label's balance.

`rebuild_digest` reads the rows again from `build` and digests them: the same digest as recorded means the
version can be rebuilt from its manifest, whatever has landed since. `diff` compares two versions' schema,
rows and metrics side by side (like `dvc metrics diff`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

MANIFEST_KEY = "manifest"
DIGEST_KEY = "content_sha256"
LAKE_TABLE = "lake_table"
LANCEDB_TABLE = "lancedb_table"
# Label balance is kept for at most this many distinct label values (a label is a class, not an id).
MAX_LABEL_VALUES = 100
READ_BATCH_ROWS = 16_384


class VersionError(Exception):
    """A version cannot be published, read or rebuilt; the message says which and why."""


# -- the manifest ------------------------------------------------------------------------------------------


@functools.cache
def code_version() -> dict[str, str | None]:
    """The code that builds versions: package version and git commit (`PLATFORM_GIT_COMMIT` where the image has
    no .git, else `git rev-parse HEAD` of the checkout the package runs from, else None)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        package_version = version("platform_assets")
    except PackageNotFoundError:
        package_version = None
    from platform_assets.lib.config import git_commit_override

    commit = git_commit_override()
    if commit is None:
        source = Path(__file__).resolve().parents[2]
        if (source / ".git").exists():
            try:
                found = subprocess.run(
                    ["git", "-C", str(source), "rev-parse", "HEAD"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=False,
                )
                commit = found.stdout.strip() or None
            except (OSError, subprocess.TimeoutExpired):
                commit = None
    return {"package": "platform_assets", "version": package_version, "git_commit": commit}


class ColumnMetrics:
    """Metrics of a stream of batches: rows, null share per column, mean of numeric columns, label balance."""

    def __init__(self, schema: pa.Schema, label: str | None = None) -> None:
        import pyarrow as pa

        self.schema = schema
        self.label = label
        self.rows = 0
        self._nulls = dict.fromkeys(schema.names, 0)
        self._numeric = [
            f.name
            for f in schema
            if pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_boolean(f.type)
        ]
        self._sums = dict.fromkeys(self._numeric, 0.0)
        self._counts = dict.fromkeys(self._numeric, 0)
        self._labels: dict[str, int] = {}

    def update(self, batch: pa.RecordBatch) -> None:
        """Add a batch's rows."""
        import pyarrow as pa
        import pyarrow.compute as pc

        self.rows += batch.num_rows
        for name in self.schema.names:
            column = batch.column(name)
            self._nulls[name] += column.null_count
            if name in self._sums:
                values = column.cast(pa.float64()) if pa.types.is_boolean(column.type) else column
                total = pc.sum(values).as_py()
                self._sums[name] += float(total or 0.0)
                self._counts[name] += len(column) - column.null_count
        if self.label is not None:
            for item in pc.value_counts(batch.column(self.label)).to_pylist():
                key = "null" if item["values"] is None else str(item["values"])
                if key in self._labels or len(self._labels) < MAX_LABEL_VALUES:
                    self._labels[key] = self._labels.get(key, 0) + item["counts"]

    def result(self) -> dict[str, Any]:
        """{rows, null_share: {column: share}, mean: {column: mean}, label, label_balance: {value: share}}."""
        rows = max(self.rows, 1)
        metrics: dict[str, Any] = {
            "rows": self.rows,
            "null_share": {name: round(count / rows, 6) for name, count in self._nulls.items()},
            "mean": {
                name: round(self._sums[name] / self._counts[name], 6)
                for name in self._numeric
                if self._counts[name]
            },
        }
        if self.label is not None:
            metrics["label"] = self.label
            metrics["label_balance"] = {
                key: round(count / rows, 6) for key, count in sorted(self._labels.items())
            }
        return metrics


def feast_manifest(view_names: list[str], definitions_file: str | os.PathLike[str]) -> dict[str, Any]:
    """The Feast part of a manifest: the feature views read and the SHA-256 of the file defining them."""
    return {
        "feature_views": sorted(view_names),
        "definitions_sha256": hashlib.sha256(Path(definitions_file).read_bytes()).hexdigest(),
    }


def table_metrics(table: pa.Table, label: str | None = None) -> dict[str, Any]:
    """`ColumnMetrics` of a table held in memory."""
    metrics = ColumnMetrics(table.schema, label)
    for batch in table.to_batches():
        metrics.update(batch)
    return metrics.result()


def version_manifest(
    *,
    build: dict[str, Any],
    inputs: dict[str, Any],
    quality: dict[str, Any],
    metrics: dict[str, Any],
    feast: dict[str, Any] | None = None,
    pin: str | None = None,
) -> dict[str, Any]:
    """A version's manifest (see the module docstring): what it is built from, by which code, its quality and
    metrics."""
    manifest: dict[str, Any] = {
        "build": build,
        "inputs": inputs,
        "code": code_version(),
        "quality": quality,
        "metrics": metrics,
    }
    if pin is not None:
        manifest["pin"] = pin
    if feast is not None:
        manifest["feast"] = feast
    return manifest


def check_results(instance: Any, asset_key: Any) -> dict[str, dict[str, Any]]:
    """The latest result of every check the code location defines on `asset_key` (`{check name: {status,
    passed, run_id, partition}}`; status NOT_RUN for a check that never ran), read from the Dagster instance
    when a version is published."""
    # The code location's graph: a run's own job graph (materialize, a selection) leaves out checks it does not run.
    from platform_assets.definitions import defs

    results: dict[str, dict[str, Any]] = {}
    check_keys = defs.resolve_asset_graph().get_check_keys_for_assets({asset_key})
    for check_key in sorted(check_keys, key=lambda k: k.name):
        record = instance.get_latest_asset_check_evaluation_record(check_key)
        evaluation = record.evaluation if record is not None else None
        if evaluation is None:
            results[check_key.name] = {"status": "NOT_RUN"}
            continue
        if not hasattr(evaluation, "passed"):
            # Planned but never evaluated: its run failed or was stopped before (a blocking check upstream).
            results[check_key.name] = {"status": "NOT_EVALUATED", "run_id": record.run_id}
            continue
        results[check_key.name] = {
            "status": "PASSED" if evaluation.passed else "FAILED",
            "severity": evaluation.severity.value,
            "run_id": record.run_id,
            "partition": evaluation.partition,
        }
    return results


def asset_lineage(context: Any) -> list[str]:
    """Every upstream asset of the running asset, read from the asset graph (not a hand-kept list)."""
    # The job's asset graph (the whole code location's when run from the UI) — the same graph the UI draws.
    graph = context.job_def.asset_layer.asset_graph
    seen: list[str] = []
    frontier = [context.asset_key]
    while frontier:
        key = frontier.pop()
        for parent in sorted(graph.get(key).parent_keys, key=lambda k: k.to_user_string()):
            name = parent.to_user_string()
            if name not in seen:
                seen.append(name)
                frontier.append(parent)
    return seen


def lineage_record(context: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata center's lineage record of a published version: its Dagster assets and run, and its input
    tables at the snapshots and versions it was read from."""
    tables = [f"{name}@{snapshot}" for name, snapshot in (inputs.get("lake") or {}).items()]
    tables += [f"lancedb:{name}@v{version}" for name, version in (inputs.get("lancedb") or {}).items()]
    return {
        "entity_type": "dataset",
        "lineage": {
            "upstream": {
                "source_tables": tables,
                "dagster_assets": asset_lineage(context),
                "dagster_runs": [context.run_id],
            },
            "downstream": {},
        },
    }


# -- reading what a version is built from -----------------------------------------------------------------


def read_build(build: Mapping[str, Any]) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The schema and the rows, as a stream of batches, of what `build` names (see the module docstring)."""
    kind = build.get("kind")
    if kind == LAKE_TABLE:
        return _read_lake_table(build)
    if kind == LANCEDB_TABLE:
        return _read_lancedb_table(build)
    raise VersionError(f"unknown build kind {kind!r} (expected {LAKE_TABLE!r} or {LANCEDB_TABLE!r})")


def _read_lake_table(build: Mapping[str, Any]) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    import pyarrow as pa

    from platform_assets.lib.lake import (
        iceberg_compatible_schema,
        iter_batches,
        load_table,
        open_catalog,
        schema_at,
    )
    from platform_assets.lib.published import pa_schema_without_metadata

    name, snapshot_id = build["table"], int(build["snapshot_id"])
    table = load_table(open_catalog(), name)
    if table is None:
        raise VersionError(f"no table {name} in the lake catalog")
    snapshot = table.snapshot_by_id(snapshot_id)
    if snapshot is None:
        raise VersionError(f"{name} has no snapshot {snapshot_id} (expired, or from another table)")
    columns = list(build["columns"])
    iceberg_schema = schema_at(table, snapshot)
    # The types readers without Iceberg get (a published version's, lib/published.plain_table): plain strings
    # and lists, no field ids.
    schema = pa_schema_without_metadata(
        iceberg_compatible_schema(pa.schema([iceberg_schema.as_arrow().field(c) for c in columns]))
    )
    batches = iter_batches(table, columns=columns, snapshot_id=snapshot_id, batch_rows=READ_BATCH_ROWS)
    return schema, (batch.cast(schema) for batch in batches)


def _read_lancedb_table(build: Mapping[str, Any]) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    from platform_assets.lib.vector_store import connect_lancedb, iter_columns, open_table

    name, version = build["table"], int(build["version"])
    table = open_table(connect_lancedb(), name)
    if table is None:
        raise VersionError(f"no LanceDB table {name!r}")
    try:
        table.checkout(version)
    except Exception as err:  # noqa: BLE001 - lancedb raises ValueError or its own errors
        raise VersionError(f"LanceDB table {name!r} has no version {version} (cleaned up?): {err}") from None
    columns = list(build["columns"])
    schema = _project(table.schema, columns)
    return schema, iter_columns(table, columns, batch_rows=READ_BATCH_ROWS)


def _project(schema: pa.Schema, columns: list[str]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([schema.field(c) for c in columns])


def rebuild_digest(manifest: Mapping[str, Any]) -> tuple[str, int]:
    """Read a version's rows again from its manifest's `build` and return (their digest, rows)."""
    from platform_assets.lib.published import RowDigest

    schema, batches = read_build(manifest["build"])
    digest = RowDigest(schema)
    for batch in batches:
        digest.update(batch)
    return digest.hexdigest(), digest.rows


def pin_inputs(inputs: Mapping[str, Any], tag: str) -> None:
    """Tag every input (lake snapshots, Lance versions) so that expiry and clean-up never remove them."""
    from platform_assets.lib.lake import open_catalog, tag_snapshot
    from platform_assets.lib.vector_store import connect_lancedb, open_table

    lake = inputs.get("lake") or {}
    if lake:
        catalog = open_catalog()
        for name, snapshot_id in lake.items():
            tag_snapshot(catalog, name, int(snapshot_id), tag)
    for name, version in (inputs.get("lancedb") or {}).items():
        table = open_table(connect_lancedb(), name)
        if table is None:
            raise VersionError(f"no LanceDB table {name!r} to pin")
        if tag in table.tags.list():
            table.tags.update(tag, int(version))
        else:
            table.tags.create(tag, int(version))


def pinned_inputs_missing(manifest: Mapping[str, Any]) -> list[str]:
    """What a manifest's inputs lack: a table, its snapshot or Lance version, or the pin tag on it."""
    from platform_assets.lib.lake import load_table, open_catalog
    from platform_assets.lib.vector_store import connect_lancedb, open_table

    inputs, tag = manifest.get("inputs") or {}, manifest.get("pin")
    missing = []
    lake = inputs.get("lake") or {}
    catalog = open_catalog() if lake else None
    for name, snapshot_id in lake.items():
        table = load_table(catalog, name)
        if table is None or table.snapshot_by_id(int(snapshot_id)) is None:
            missing.append(f"{name} has no snapshot {snapshot_id}")
        elif tag and (ref := table.snapshot_by_name(tag)) is not None and ref.snapshot_id != int(snapshot_id):
            missing.append(f"{name}'s tag {tag} points at another snapshot")
        elif tag and table.snapshot_by_name(tag) is None:
            missing.append(f"{name} snapshot {snapshot_id} is not tagged {tag}")
    for name, version in (inputs.get("lancedb") or {}).items():
        table = open_table(connect_lancedb(), name)
        tags = table.tags.list() if table is not None else {}
        if table is None:
            missing.append(f"no LanceDB table {name!r}")
        elif tag and tags.get(tag, {}).get("version") != int(version):
            missing.append(f"LanceDB table {name!r} version {version} is not tagged {tag}")
    return missing


# -- publishing ---------------------------------------------------------------------------------------------


@dataclass
class VersionSpec:
    """What to publish: the rows (`build`), where they come from (`inputs`), and how to describe them."""

    dataset_id: str
    name: str
    build: dict[str, Any]
    inputs: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    label: str | None = None
    feast: dict[str, Any] | None = None
    quality: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    extra_metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PublishedDatasetVersion:
    """The outcome: the version (new or the latest, unchanged), its registration payload and whether it is new."""

    version: int
    payload: dict[str, Any]
    created: bool
    seq: int | None


def pin_tag(dataset_id: str, digest: str) -> str:
    """The tag on a version's inputs: named by the rows, so a retry pins under the same name."""
    return f"publish-{dataset_id}-{digest[:16]}"


def publish_version(
    spec: VersionSpec, client: Any, lake_root: str, *, run_id: str | None, log: Any
) -> PublishedDatasetVersion:
    """Write the rows of `spec.build` as the next version of `spec.dataset_id` and register it with its
    manifest, or register nothing when the latest version has the same rows.

    The rows stream through (one row group in memory). The inputs are pinned before the registration, so a
    registered version's inputs are never expired; a failure before it leaves no directory and no version.
    """
    from platform_assets.lib.published import StagedVersion, VersionTaken

    schema, batches = read_build(spec.build)
    latest = latest_registration(client, spec.dataset_id)
    staged = StagedVersion(lake_root, spec.dataset_id, schema)
    metrics = ColumnMetrics(staged.schema, spec.label)
    try:
        for batch in batches:
            staged.write(batch)
            metrics.update(batch)
        digest = staged.close()
    except BaseException:
        staged.discard()
        raise
    if latest is not None and (latest.get("metadata") or {}).get(DIGEST_KEY) == digest:
        staged.discard()
        log.info(f"{spec.dataset_id} version {latest['version']} has the same rows: nothing published")
        return PublishedDatasetVersion(latest["version"], as_payload(latest), created=False, seq=None)
    version = (latest["version"] if latest is not None else 0) + 1
    tag = pin_tag(spec.dataset_id, digest)
    pin_inputs(spec.inputs, tag)
    try:
        written = staged.publish(version)
    except VersionTaken as taken:
        raise VersionError(
            f"{taken.directory} exists with other rows, but the metadata center's latest version of "
            f"{spec.dataset_id} is {version - 1}: another run wrote it and has not registered it (yet). A version "
            "directory is never overwritten: move it away once no publication of this dataset is in progress."
        ) from None
    except BaseException:
        staged.discard()
        raise
    storage = written.directory if "://" in written.directory else f"file://{written.directory}"
    manifest = version_manifest(
        build=spec.build,
        inputs=spec.inputs,
        quality=spec.quality,
        metrics=metrics.result(),
        feast=spec.feast,
        pin=tag,
    )
    payload = {
        "dataset_id": spec.dataset_id,
        "name": spec.name,
        "storage_path": storage,
        "format": "parquet",
        "size_bytes": written.size_bytes,
        "row_count": metrics.rows,
        "schema": {"columns": [{"name": f.name, "type": declared_type(f.type)} for f in staged.schema]},
        "tags": sorted(set(spec.tags)),
        "metadata": {
            **spec.extra_metadata,
            "description": spec.description,
            DIGEST_KEY: digest,
            "dagster_run_id": run_id,
            MANIFEST_KEY: manifest,
        },
    }
    registered = client.register(payload)
    if registered["version"] != version:
        # Another registration of the id came in between: the directory keeps its name (it is immutable).
        log.warning(
            f"{spec.dataset_id}: {written.directory} was registered as version {registered['version']}"
        )
    log.info(f"{spec.dataset_id} version {registered['version']}: {metrics.rows} rows at {written.directory}")
    return PublishedDatasetVersion(registered["version"], payload, created=True, seq=registered.get("seq"))


def declared_type(kind: pa.DataType) -> str:
    """The metadata center's column type for an Arrow type (`array<float>` for a float32 vector)."""
    import pyarrow as pa

    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return f"array<{declared_type(kind.value_type)}>"
    if pa.types.is_timestamp(kind):
        return "timestamptz" if kind.tz else "timestamp"
    if pa.types.is_decimal(kind):
        return f"decimal({kind.precision},{kind.scale})"
    names = {
        pa.bool_(): "boolean",
        pa.int8(): "tinyint",
        pa.int16(): "smallint",
        pa.int32(): "int",
        pa.float16(): "float",
        pa.float32(): "float",
        pa.float64(): "double",
        pa.date32(): "date",
        pa.date64(): "date",
        pa.binary(): "binary",
        pa.large_binary(): "binary",
    }
    if kind in names:
        return names[kind]
    return "bigint" if pa.types.is_integer(kind) else "string"


# -- the registry side ------------------------------------------------------------------------------------


def latest_registration(client: Any, dataset_id: str) -> dict[str, Any] | None:
    """The latest registered version of `dataset_id` (the metadata center's view), None when unknown."""
    from platform_assets.metadata_center.client import MetadataCenterError

    try:
        return client.get(dataset_id)
    except MetadataCenterError as err:
        if err.status != 404:
            raise
        return None


def as_payload(view: Mapping[str, Any]) -> dict[str, Any]:
    """A registration's view as the payload that registered it."""
    keys = ("dataset_id", "name", "format", "row_count", "size_bytes", "schema", "tags", "metadata")
    return {**{k: view.get(k) for k in keys}, "storage_path": view["storage"]["uri"]}


def version_summary(view: Mapping[str, Any]) -> dict[str, Any]:
    """One line of `platform datasets versions`: version, when, rows, digest, code and inputs."""
    metadata = view.get("metadata") or {}
    manifest = metadata.get(MANIFEST_KEY) or {}
    inputs = manifest.get("inputs") or {}
    pinned = [f"{name}@{snap}" for name, snap in (inputs.get("lake") or {}).items()]
    pinned += [f"{name}@v{ver}" for name, ver in (inputs.get("lancedb") or {}).items()]
    if not pinned and metadata.get("lake/input_snapshots"):
        pinned = [f"{name}@{snap}" for name, snap in metadata["lake/input_snapshots"].items()]
    code = manifest.get("code") or {}
    return {
        "version": view["version"],
        "registered_at": view.get("registered_at"),
        "rows": view.get("row_count"),
        "content_sha256": metadata.get(DIGEST_KEY),
        "code": code.get("git_commit") or code.get("version"),
        "inputs": pinned,
        "storage_path": (view.get("storage") or {}).get("uri"),
    }


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Two versions side by side: schema changes, rows, metrics (old, new, change), inputs and code."""
    old_columns = {c["name"]: c["type"] for c in (old.get("schema") or {}).get("columns", [])}
    new_columns = {c["name"]: c["type"] for c in (new.get("schema") or {}).get("columns", [])}
    old_manifest = (old.get("metadata") or {}).get(MANIFEST_KEY) or {}
    new_manifest = (new.get("metadata") or {}).get(MANIFEST_KEY) or {}
    old_metrics, new_metrics = old_manifest.get("metrics") or {}, new_manifest.get("metrics") or {}
    rows: list[dict[str, Any]] = [_change("rows", old.get("row_count"), new.get("row_count"))]
    for group in ("mean", "null_share", "label_balance"):
        old_group, new_group = old_metrics.get(group) or {}, new_metrics.get(group) or {}
        for key in sorted(set(old_group) | set(new_group)):
            rows.append(_change(f"{group}.{key}", old_group.get(key), new_group.get(key)))
    return {
        "dataset_id": new.get("dataset_id"),
        "versions": [old.get("version"), new.get("version")],
        "schema": {
            "added": {n: t for n, t in new_columns.items() if n not in old_columns},
            "removed": {n: t for n, t in old_columns.items() if n not in new_columns},
            "changed": {
                n: [old_columns[n], t]
                for n, t in new_columns.items()
                if n in old_columns and old_columns[n] != t
            },
        },
        "metrics": rows,
        "same_rows": (old.get("metadata") or {}).get(DIGEST_KEY)
        == (new.get("metadata") or {}).get(DIGEST_KEY),
        "inputs": [old_manifest.get("inputs"), new_manifest.get("inputs")],
        "code": [old_manifest.get("code"), new_manifest.get("code")],
    }


def _change(path: str, old: Any, new: Any) -> dict[str, Any]:
    change = None
    if isinstance(old, int | float) and isinstance(new, int | float) and not isinstance(old, bool):
        change = round(new - old, 6)
    return {"metric": path, "old": old, "new": new, "change": change}
