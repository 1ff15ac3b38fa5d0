"""The code location loads, stays light at import time, and its graph matches the reviewed snapshot."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from platform_assets.definitions import defs
from platform_assets_tests.conftest import PROJECT_ROOT

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
HEAVY_MODULES = [
    "ray",
    "torch",
    "pyspark",
    "lancedb",
    "feast",
    "great_expectations",
    "daft",
    "sentence_transformers",
    "matplotlib",
    "sklearn",
]


def graph_snapshot() -> dict:
    """Asset keys with deps and groups, checks (blocking or not), jobs with their assets and checks, schedules
    and sensors."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "group": node.group_name,
            "partitioned": node.is_partitioned,
        }
    checks = sorted(
        f"{spec.asset_key.to_user_string()}:{spec.name}{' (blocking)' if spec.blocking else ''}"
        for checks_def in defs.asset_checks
        for spec in checks_def.check_specs
    )
    return {
        "assets": assets,
        "checks": checks,
        "jobs": {
            job.name: {
                "assets": sorted(key.to_user_string() for key in job.asset_layer.executable_asset_keys),
                "checks": sorted(
                    f"{key.asset_key.to_user_string()}:{key.name}"
                    for key in job.asset_layer.asset_graph.asset_check_keys
                ),
            }
            for job in defs.resolve_all_job_defs()
            if not job.name.startswith("__")
        },
        "schedules": sorted(f"{s.name} [{s.cron_schedule}]" for s in defs.schedules or []),
        "sensors": sorted(s.name for s in defs.sensors or []),
    }


def test_graph_matches_snapshot() -> None:
    """An accidental change to the graph shows up here; regenerate with UPDATE_SNAPSHOTS=1 when intended."""
    current = graph_snapshot()
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert SNAPSHOT.exists(), f"{SNAPSHOT} is missing: run the tests once with UPDATE_SNAPSHOTS=1"
    assert current == json.loads(SNAPSHOT.read_text())


def test_reviews_contract() -> None:
    job = defs.resolve_job_def("reviews_job")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        "raw/reviews",
        "cleaned/reviews",
        "quarantine/reviews",
        "embedded/reviews",
        "curated/reviews",
        "quarantine/reviews_curation",
        "curated/reviews_duplicate_pairs",
    }
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey(["embedded", "reviews"])).parent_keys == {
        dg.AssetKey(["cleaned", "reviews"])
    }
    assert graph.get(dg.AssetKey(["cleaned", "reviews"])).parent_keys == {dg.AssetKey(["raw", "reviews"])}
    assert graph.get(dg.AssetKey(["quarantine", "reviews"])).parent_keys == {dg.AssetKey(["raw", "reviews"])}
    calibration = dg.AssetKey(["curated", "reviews_near_duplicate_calibration"])
    assert graph.get(dg.AssetKey(["curated", "reviews"])).parent_keys == {
        dg.AssetKey(["embedded", "reviews"]),
        calibration,
    }
    assert graph.get(calibration).parent_keys == {dg.AssetKey(["embedded", "reviews"])}
    assert graph.get(dg.AssetKey(["published", "reviews_corpus"])).parent_keys == {
        dg.AssetKey(["curated", "reviews"])
    }


def test_every_asset_has_a_description_and_check() -> None:
    graph = defs.resolve_asset_graph()
    checked = {spec.asset_key for checks_def in defs.asset_checks for spec in checks_def.check_specs}
    for key in graph.get_all_asset_keys():
        assert graph.get(key).description, key
        assert key in checked, f"{key.to_user_string()} has no asset check"


def test_loading_definitions_imports_no_heavy_module() -> None:
    script = (
        "import sys, json\n"
        "import platform_assets.definitions\n"
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-"], input=script, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == []


def test_workspace_yaml_points_at_the_definitions_module() -> None:
    import yaml

    workspace = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["module_name"] == "platform_assets.definitions"


def test_importing_the_package_changes_nothing_in_the_process() -> None:
    """The environment and warning filters are set by the entry points, not by `import platform_assets`."""
    script = (
        "import os, sys, json, warnings\n"
        "env, filters = dict(os.environ), list(warnings.filters)\n"
        "import platform_assets, platform_assets.search, platform_assets.features, platform_assets.sdk\n"
        "changed = sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k))\n"
        "ours = [str(f[1].pattern) for f in warnings.filters if f not in filters and f[1] is not None\n"
        "        and 'preview|beta' in f[1].pattern]\n"
        "print(json.dumps({'env': changed, 'filters': ours}))\n"
    )
    environment = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "RAY_USAGE_STATS_ENABLED")
    }
    completed = subprocess.run(
        [sys.executable, "-"],
        input=script,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
        env=environment,
    )
    assert completed.returncode == 0, completed.stderr
    # (numpy adds filters of its own on import; only the platform's would be a side effect of ours.)
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == {"env": [], "filters": []}
