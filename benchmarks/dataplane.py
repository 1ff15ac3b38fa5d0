"""The data plane: raw → cleaned + quarantine reviews through Dagster with its checks, delivery by delivery.

Each measured run is a child process of its own (`python -m benchmarks.dataplane --child …`), so its peak RSS
(VmHWM) is that run's and nothing else's. The history (earlier deliveries in the lake) is written first
by other children; the measured delivery then shows whether a run's memory grows with the history.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def delivery_name(index: int) -> str:
    """The landing file (and partition key) of the `index`-th delivery."""
    return f"delivery_{index:04d}.csv"


def write_delivery(landing: Path, index: int, rows: int) -> Path:
    """A delivery of `rows` dirty reviews (the sample generator's dirt) whose review_ids no other delivery has."""
    from platform_assets.defs.reviews.sample_data import generate_reviews

    frame = generate_reviews(rows, seed=1000 + index)
    frame["review_id"] = [
        f"D{index:04d}-{value}" if isinstance(value, str) else value for value in frame["review_id"]
    ]
    landing.mkdir(parents=True, exist_ok=True)
    path = landing / delivery_name(index)
    # CSV, the common landing format: ratings delivered as words stay what they are (an ingest error).
    frame.to_csv(path, index=False)
    return path


def child_environment(data_dir: Path) -> dict[str, str]:
    """The environment of a child: the platform under `data_dir` (its own lake, catalog and instance)."""
    return {
        **os.environ,
        "PLATFORM_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(data_dir / "dagster"),
        "PLATFORM_LAKE_URI": str(data_dir / "lake"),
        "PLATFORM_CATALOG_URI": f"sqlite:///{data_dir / 'catalog.db'}",
    }


def run_child(data_dir: Path, mode: str, deliveries: list[str]) -> dict[str, Any]:
    """Run `deliveries` (mode `dagster`: through Dagster with checks; `bare`: Daft cleaning only) in a child
    process; its figures."""
    command = [sys.executable, "-m", "benchmarks.dataplane", "--child", mode, "--data-dir", str(data_dir)]
    done = subprocess.run(
        [*command, *deliveries],
        capture_output=True,
        text=True,
        env=child_environment(data_dir),
        cwd=PROJECT_ROOT,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"dataplane child ({mode}) failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def peak_rss_bytes() -> int:
    """This process's peak resident set since it started its program: VmHWM on Linux (ru_maxrss also counts
    what the parent held when it forked this process, and survives exec), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(mode: str, data_dir: Path, deliveries: list[str]) -> dict[str, Any]:
    from platform_assets.lib.runtime_env import apply_runtime_defaults

    apply_runtime_defaults()
    import dagster as dg

    from platform_assets.definitions import defs
    from platform_assets.defs.reviews.assets import CLEANED, QUARANTINE, RAW, REVIEW_SCHEMA
    from platform_assets.defs.reviews.cleaning import clean_reviews
    from platform_assets.defs.reviews.deliveries import materialize_deliveries  # noqa: I001
    from platform_assets.lib.landing import read_landing
    from platform_assets.lib.resources import shared_resources

    after_imports = peak_rss_bytes()
    start = time.perf_counter()
    rows = 0
    if mode == "bare":
        landing = data_dir / "landing" / "reviews"
        for delivery in deliveries:
            raw, _ = read_landing(landing, REVIEW_SCHEMA, include=lambda relative, d=delivery: relative == d)
            result = clean_reviews(raw)
            rows += len(result.cleaned) + len(result.quarantine)
    else:
        (data_dir / "dagster").mkdir(parents=True, exist_ok=True)
        instance = dg.DagsterInstance.local_temp(str(data_dir / "dagster"))
        results = materialize_deliveries(
            [*defs.assets, *defs.asset_checks],
            resources={**defs.resources, **shared_resources()},
            instance=instance,
            deliveries=deliveries,
            selection=dg.AssetSelection.assets(RAW, CLEANED, QUARANTINE),
        )
        for result in results.values():
            assert result.success
            failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
            assert not failed, f"checks failed: {failed}"
            rows += sum(
                int(event.materialization.metadata["dagster/row_count"].value)
                for event in result.get_asset_materialization_events()
                if event.asset_key == RAW
            )
    seconds = time.perf_counter() - start
    peak = peak_rss_bytes()
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds) if seconds else None,
        "peak_rss_bytes": peak,
        "rss_after_imports_bytes": after_imports,
    }


def main(argv: list[str] | None = None) -> int:
    """The child entry point (the parent uses `run_child`)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", choices=("dagster", "bare"), required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("deliveries", nargs="+")
    args = parser.parse_args(argv)
    print(json.dumps(_child(args.child, args.data_dir, args.deliveries)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
