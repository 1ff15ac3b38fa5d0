"""The main run behind `make run`: every domain's assets, in the asset graph's order.

Nothing here names a domain. The plan comes from the graph:
- assets are grouped into stages: an asset runs in the stage of its latest parent, or one stage later when
  the parent has other partitions (one run cannot mix partitions definitions);
- an unpartitioned group is one run of its assets (with their checks);
- a partitioned group runs the partitions that the domain's own sensors request right now (the same
  requests the daemon would act on, dynamic partitions included), in order. A partition whose request was
  already run successfully (the same run key) is not run again. A partitioned group that no sensor targets
  is left to its schedules (lake sync: it needs a collection node over SSH).
Before that, every domain that has `sample_data.write_sample` writes its sample data, and the metadata
center is started for the run when none answers at METADATA_CENTER_URL.

Every run is tagged with the host and pid of the process that executes it. A main run killed mid-run (SIGKILL,
OOM killer) cannot mark its run failed, and nothing else can tell that its process is gone: the default run
launcher has no health check for a run executed in process. So the next main run on the instance first marks
its own earlier runs failed (or canceled, when a cancel was pending) whose process on this host is gone, which
also frees the slot they held in the run queue.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from platform_assets.lib.config import get_settings
from platform_assets.lib.domains import DOMAINS_PACKAGE, SampleSize, load_domains
from platform_assets.lib.run_summary import RunSummary

DEFAULT_SAMPLE = SampleSize()
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# The tag that records which sensor request (and which stage of the plan) a main-run run carried out.
MAIN_RUN_KEY_TAG = "platform/main_run_key"
# The process that executes a main-run run: host name, pid and the pid's start time (clock ticks since boot,
# from /proc; absent elsewhere), so a pid reused by another process is not taken for the run's.
HOST_TAG = "platform/main_run_host"
PID_TAG = "platform/main_run_pid"
PID_START_TAG = "platform/main_run_pid_start"
# The statuses of a run that has not ended; a run in one of them whose process is gone never will.
UNFINISHED = (
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)


@dataclass(frozen=True)
class Stage:
    """Assets that run together: one run (unpartitioned) or one run per requested partition."""

    index: int
    assets: tuple[dg.AssetKey, ...]
    partitions_def: dg.PartitionsDefinition | None
    groups: tuple[str, ...]

    @property
    def label(self) -> str:
        """A short name for output: the asset groups it covers."""
        return ", ".join(self.groups)

    @property
    def signature(self) -> str:
        """Stable for the same set of assets, so a request is recognised as done by the same stage only."""
        names = "\n".join(sorted(key.to_user_string() for key in self.assets))
        return hashlib.sha256(names.encode()).hexdigest()[:12]


@dataclass
class PlannedRun:
    """One run of a stage: a partition (and the tags of the sensor request behind it) or the whole stage."""

    stage: Stage
    partition_key: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    run_key: str | None = None

    @property
    def label(self) -> str:
        """How the run is named in the output and the summary."""
        return f"{self.stage.label} {self.partition_key}" if self.partition_key else self.stage.label


def plan_stages(defs: dg.Definitions) -> list[Stage]:
    """The materializable assets of `defs` grouped into stages, in an order that respects every dependency."""
    graph = defs.resolve_asset_graph()
    stage_of: dict[dg.AssetKey, int] = {}
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        if not node.is_materializable:
            continue
        stage = 0
        for parent in node.parent_keys:
            if parent in stage_of:
                crossing = graph.get(parent).partitions_def != node.partitions_def
                stage = max(stage, stage_of[parent] + int(crossing))
        stage_of[key] = stage
    grouped: dict[tuple[int, int], list[dg.AssetKey]] = {}
    definitions: list[dg.PartitionsDefinition | None] = []
    for key, stage in stage_of.items():
        partitions_def = graph.get(key).partitions_def
        if partitions_def not in definitions:
            definitions.append(partitions_def)
        grouped.setdefault((stage, definitions.index(partitions_def)), []).append(key)
    stages = []
    for (index, definition_index), keys in sorted(grouped.items()):
        groups = tuple(sorted({graph.get(key).group_name or "default" for key in keys}))
        stages.append(Stage(index, tuple(keys), definitions[definition_index], groups))
    return stages


def _requested_runs(
    stage: Stage,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    evaluated: dict[str, list[dg.RunRequest]],
) -> list[PlannedRun]:
    """What the sensors that target any of the stage's assets request now (each sensor evaluated once)."""
    runs: list[PlannedRun] = []
    for sensor in defs.sensors or []:
        targeted = set()
        for target in sensor.targets:
            targeted |= set(defs.resolve_job_def(target.job_name).asset_layer.executable_asset_keys)
        if not targeted & set(stage.assets):
            continue
        if sensor.name not in evaluated:
            evaluated[sensor.name] = _evaluate_sensor(sensor, defs, instance)
        for request in evaluated[sensor.name]:
            if request.partition_key is not None:
                runs.append(PlannedRun(stage, request.partition_key, dict(request.tags), request.run_key))
    return runs


def _evaluate_sensor(
    sensor: dg.SensorDefinition, defs: dg.Definitions, instance: dg.DagsterInstance
) -> list[dg.RunRequest]:
    """One tick of `sensor` with a fresh cursor; its dynamic-partition requests are applied to the instance.

    The sensor function is invoked directly: Dagster's tick evaluation would validate a dynamic partition
    key before the same tick's request to add it is applied.
    """
    resources = {key: (defs.resources or {})[key] for key in sensor.required_resource_keys}
    # A sensor's context.log prints at INFO; in the main run its requests speak for it.
    logging.disable(logging.INFO)
    try:
        with dg.build_sensor_context(
            instance=instance, definitions=defs, sensor_name=sensor.name, resources=resources
        ) as context:
            result = sensor(context)
    finally:
        logging.disable(logging.NOTSET)
    if isinstance(result, dg.SkipReason) or result is None:
        return []
    if isinstance(result, dg.RunRequest):
        return [result]
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests or []:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        return list(result.run_requests or [])
    return [request for request in result if isinstance(request, dg.RunRequest)]


def _already_done(instance: dg.DagsterInstance, main_run_key: str) -> bool:
    runs = instance.get_runs(
        filters=dg.RunsFilter(tags={MAIN_RUN_KEY_TAG: main_run_key}, statuses=[dg.DagsterRunStatus.SUCCESS]),
        limit=1,
    )
    return bool(runs)


def _pid_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat field 22); None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The fields after the command name (which may hold spaces and parentheses) start at field 3, the state.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def process_tags() -> dict[str, str]:
    """The tags that name this process as the one executing a run (see `fail_stale_runs`)."""
    pid = os.getpid()
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(pid)}
    started = _pid_start(pid)
    if started is not None:
        tags[PID_START_TAG] = started
    return tags


def _process_alive(pid: int, started: str | None) -> bool:
    """Whether process `pid` of this host still runs, and is the same process (same start time) when known."""
    if pid == os.getpid():
        # This process executes its runs synchronously and has none going before its main run starts.
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    return started is None or _pid_start(pid) in (None, started)


def fail_stale_runs(instance: dg.DagsterInstance, echo: Callable[[str], None] = print) -> list[str]:
    """Mark failed the unfinished main-run runs of this host whose process is gone; return their run ids.

    A run that was being canceled is marked canceled instead. Runs of other hosts are left alone: whether
    their process lives cannot be told from here.
    """
    host = socket.gethostname()
    cleared = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=list(UNFINISHED), tags={HOST_TAG: host})):
        try:
            pid = int(run.tags.get(PID_TAG, ""))
        except ValueError:
            continue
        if _process_alive(pid, run.tags.get(PID_START_TAG)):
            continue
        message = f"process {pid} on {host} is gone; marked {{}} by platform run (process {os.getpid()})"
        if run.status == dg.DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, message=message.format("canceled"))
            echo(f"  run {run.run_id}: {message.format('canceled')}")
        else:
            instance.report_run_failed(run, message=message.format("failed"))
            echo(f"  run {run.run_id}: {message.format('failed')}")
        cleared.append(run.run_id)
    return cleared


def run_main(
    instance: dg.DagsterInstance,
    size: SampleSize | None = DEFAULT_SAMPLE,
    echo: Callable[[str], None] = print,
    package: str = DOMAINS_PACKAGE,
) -> RunSummary:
    """Write sample data (unless `size` is None) and materialize every domain under `package` in process.

    A failed run skips the stages that depend on its assets; the rest goes on. Earlier main-run runs whose
    process is gone are marked failed first (`fail_stale_runs`).
    """
    from platform_assets.definitions import build_defs
    from platform_assets.metadata_center.embedded import metadata_center_for_run

    fail_stale_runs(instance, echo)
    defs = build_defs(package)
    summary = RunSummary()
    with metadata_center_for_run(get_settings().data_dir, echo):
        if size is not None:
            for domain in load_domains(package):
                writer = domain.sample_writer()
                if writer is not None:
                    writer(size)
        _run_stages(defs, instance, summary, echo)
    return summary


def _run_stages(
    defs: dg.Definitions, instance: dg.DagsterInstance, summary: RunSummary, echo: Callable[[str], None]
) -> None:
    graph = defs.resolve_asset_graph()
    job = defs.resolve_implicit_global_asset_job_def()
    failed: set[dg.AssetKey] = set()
    evaluated: dict[str, list[dg.RunRequest]] = {}
    owner = process_tags()
    for stage in plan_stages(defs):
        blocked = sorted(
            {parent.to_user_string() for key in stage.assets for parent in graph.get(key).parent_keys}
            & {key.to_user_string() for key in failed}
        )
        if blocked:
            echo(f"  skipped {stage.label} (upstream failed: {', '.join(blocked)})")
            failed |= set(stage.assets)
            continue
        if stage.partitions_def is None:
            runs = [PlannedRun(stage)]
        else:
            runs = _requested_runs(stage, defs, instance, evaluated)
        done = 0
        for run in runs:
            main_run_key = f"{stage.signature}:{run.run_key}" if run.run_key else None
            if main_run_key and _already_done(instance, main_run_key):
                done += 1
                continue
            echo(f"  running {run.label} …")
            tags = {**run.tags, **owner, **({MAIN_RUN_KEY_TAG: main_run_key} if main_run_key else {})}
            result = job.execute_in_process(
                instance=instance,
                partition_key=run.partition_key,
                asset_selection=list(stage.assets),
                tags=tags,
                raise_on_error=False,
                run_config=QUIET,
            )
            summary.add(run.label, result)
            if not result.success:
                failed |= set(stage.assets)
                break
        if done:
            summary.skipped.append(f"{stage.label}: {done} partition(s) already done, unchanged")
