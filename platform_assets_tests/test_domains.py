"""A domain is a package under `defs/`: the definitions and the main run pick it up with no edit elsewhere."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

import platform_assets.defs
from platform_assets.definitions import build_defs
from platform_assets.lib.domains import SampleSize, load_domains
from platform_assets.main_run import plan_stages, run_main
from platform_assets_tests.conftest import point_platform_at

# A tiny domain on the one plan: daily deliveries (a sensor asks for the days that have a file) and an
# unpartitioned summary over them, plus a sample writer.
TINY_DOMAIN = {
    "__init__.py": """
        import dagster as dg

        from {pkg}.tiny import assets
        from {pkg}.tiny.sensors import tiny_landing_sensor

        defs = dg.Definitions(assets=dg.load_assets_from_modules([assets]), sensors=[tiny_landing_sensor])
    """,
    "partitions.py": """
        import dagster as dg

        days = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-10")
    """,
    "assets.py": """
        import dagster as dg

        from platform_assets.lib.config import get_settings
        from {pkg}.tiny.partitions import days


        @dg.asset(key=["raw", "tiny"], group_name="tiny", partitions_def=days)
        def raw_tiny(context: dg.AssetExecutionContext) -> int:
            path = get_settings().landing_dir_for("tiny") / f"{{context.partition_key}}.txt"
            return len(path.read_text().split())


        @dg.asset(key=["summary", "tiny"], group_name="tiny", deps=[dg.AssetKey(["raw", "tiny"])])
        def tiny_summary() -> dg.MaterializeResult:
            files = sorted(get_settings().landing_dir_for("tiny").glob("*.txt"))
            return dg.MaterializeResult(metadata={{"files": len(files)}})
    """,
    "sensors.py": """
        import dagster as dg

        from platform_assets.lib.config import get_settings
        from {pkg}.tiny.partitions import days

        tiny_job = dg.define_asset_job("tiny_job", selection=[dg.AssetKey(["raw", "tiny"])], partitions_def=days)


        @dg.sensor(job=tiny_job)
        def tiny_landing_sensor(context):
            landing = get_settings().landing_dir_for("tiny")
            return [
                dg.RunRequest(partition_key=path.stem, run_key=f"{{path.stem}}:{{path.stat().st_size}}")
                for path in sorted(landing.glob("*.txt"))
            ]
    """,
    "sample_data.py": """
        from platform_assets.lib.config import get_settings


        def write_sample(size):
            landing = get_settings().landing_dir_for("tiny")
            landing.mkdir(parents=True, exist_ok=True)
            for day in range(1, size.days + 1):
                (landing / f"2026-01-0{{day}}.txt").write_text("word " * (day * size.rows))
    """,
}


def write_domain(root: Path, package: str) -> None:
    """The tiny domain as `root/tiny/`, its modules importing each other through `package`."""
    (root / "tiny").mkdir(parents=True)
    for name, source in TINY_DOMAIN.items():
        (root / "tiny" / name).write_text(textwrap.dedent(source.format(pkg=package)).lstrip())


@pytest.fixture
def tiny_package(tmp_path: Path) -> Iterator[str]:
    """A package of its own holding only the tiny domain, importable for the test's duration."""
    package = f"tiny_domains_{uuid.uuid4().hex[:8]}"
    (tmp_path / "pkgs" / package).mkdir(parents=True)
    (tmp_path / "pkgs" / package / "__init__.py").write_text("")
    write_domain(tmp_path / "pkgs" / package, package)
    sys.path.insert(0, str(tmp_path / "pkgs"))
    try:
        yield package
    finally:
        sys.path.remove(str(tmp_path / "pkgs"))
        for name in [m for m in sys.modules if m.startswith(package)]:
            del sys.modules[name]


def test_a_directory_under_defs_is_a_domain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dropping `tiny/` next to the real domains adds its assets and sensor to the code location and its
    assets to the main run's plan, after their upstream."""
    extra = tmp_path / "extra_defs"
    write_domain(extra, "platform_assets.defs")
    monkeypatch.setattr(platform_assets.defs, "__path__", [*platform_assets.defs.__path__, str(extra)])
    try:
        names = [domain.name for domain in load_domains()]
        assert "tiny" in names and "reviews" in names
        defs = build_defs()
        keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
        assert {"raw/tiny", "summary/tiny", "embedded/reviews"} <= keys
        assert "tiny_landing_sensor" in {sensor.name for sensor in defs.sensors}
        stages = plan_stages(defs)
        stage_of = {key.to_user_string(): stage.index for stage in stages for key in stage.assets}
        assert stage_of["summary/tiny"] > stage_of["raw/tiny"]
    finally:
        for name in [m for m in sys.modules if m.startswith("platform_assets.defs.tiny")]:
            del sys.modules[name]


def test_main_run_follows_the_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_package: str
) -> None:
    """The main run writes the domain's sample, runs the partitions its sensor requests, then the summary
    over them; a second run does not redo the partitions whose files did not change."""
    point_platform_at(monkeypatch, tmp_path / "platform")
    messages: list[str] = []
    with dg.instance_for_test(temp_dir=str(tmp_path / "platform" / "dagster")) as instance:
        first = run_main(
            instance, size=SampleSize(rows=2, days=3), echo=messages.append, package=tiny_package
        )
        assert first.ok, first.render()
        assert [label for label, _, _ in first.runs] == [
            "tiny 2026-01-01",
            "tiny 2026-01-02",
            "tiny 2026-01-03",
            "tiny",
        ]
        assert instance.get_materialized_partitions(dg.AssetKey(["raw", "tiny"])) == {
            "2026-01-01",
            "2026-01-02",
            "2026-01-03",
        }
        summary_event = instance.get_latest_materialization_event(dg.AssetKey(["summary", "tiny"]))
        assert summary_event.asset_materialization.metadata["files"].value == 3

        # One more delivered day: only that partition runs, then the summary again.
        (tmp_path / "platform" / "landing" / "tiny" / "2026-01-04.txt").write_text("one two")
        second = run_main(instance, size=None, echo=messages.append, package=tiny_package)
        assert second.ok, second.render()
        assert [label for label, _, _ in second.runs] == ["tiny 2026-01-04", "tiny"]
        assert second.skipped == ["tiny: 3 partition(s) already done, unchanged"]
    assert any("started the embedded metadata center" in message for message in messages)
