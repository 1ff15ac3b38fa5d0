"""Lake sync benchmark: the target figures (config load < 100 ms, validation < 50 ms, cleanup ~1,000 files/s).

Each figure is reported with a baseline measured in the same run on the same data, and their ratio, because
absolute times on a shared machine say little:

- config load: `load_config()` (read + YAML + validation + line numbers) vs `yaml.safe_load()` of the same text
  (pure-Python PyYAML) and vs libyaml's loader alone (what `load_config` parses with when available);
- validation: validating the parsed profiles with pydantic vs `yaml.safe_load()` of the same text;
- cleanup: `apply_retention()` deleting N expired files (walk, date parsing, safety checks, empty-dir removal) vs
  a bare `os.remove` loop over a pre-built list of the same number of files.

Run: `.venv/bin/python benchmarks/lake_sync_bench.py [--profiles 20] [--files 5000] [--repeat 7] [--json]`.
Nothing here asserts a threshold; the numbers are for reading and for tracking over time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

SEED_FIGURES = {"config_load_ms": 100.0, "validation_ms": 50.0, "cleanup_files_per_s": 1000.0}


def profiles_yaml(count: int) -> str:
    """A realistic profiles file: defaults, comments, `count` profiles using most fields."""
    lines = [
        "# Lake sync profiles (benchmark)",
        "defaults:",
        "  user: collector            # every node has the same service user",
        "  ssh_key: ~/.ssh/lake_sync_ed25519",
        "  retention_days: 30",
        "  connect_timeout_s: 10",
        "profiles:",
    ]
    for index in range(count):
        lines += [
            f"  node-{index:03d}:",
            f"    host: collector-{index:03d}.internal",
            "    port: 22",
            f"    remote_path: /data/events/node-{index:03d}/",
            "    include: ['*.csv', '*.parquet']",
            "    exclude: ['*.bak']",
            f"    target: landing/user_events/node-{index:03d}",
            "    date_formats: [YYYY-MM-DD, YYYYMMDD, YYYY/MM/DD]",
            "    bwlimit: 5M                # shared uplink",
            "    verify: checksum",
            f"    description: collection node {index}",
        ]
    return "\n".join(lines) + "\n"


def timed(function: Callable[[], Any], repeat: int) -> float:
    """Median wall time of `repeat` calls, in seconds."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def bench_config(profiles: int, repeat: int, workdir: Path) -> dict[str, Any]:
    """Config load and validation, with yaml.safe_load of the same text as the baseline."""
    from platform_assets.lake_sync.config import ProfileConfig, load_config

    text = profiles_yaml(profiles)
    path = workdir / "lake_sync.yaml"
    path.write_text(text)
    baseline = timed(lambda: yaml.safe_load(path.read_text()), repeat)
    # load_config parses with libyaml when PyYAML has it, so the fair second baseline is libyaml alone.
    c_loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    c_baseline = timed(lambda: yaml.load(path.read_text(), Loader=c_loader), repeat)  # noqa: S506 - safe loader
    load = timed(lambda: load_config(path), repeat)
    data = yaml.safe_load(text)
    defaults = data["defaults"]
    merged = [{**defaults, **fields, "name": name} for name, fields in data["profiles"].items()]
    validation = timed(lambda: [ProfileConfig.model_validate(item) for item in merged], repeat)
    assert len(load_config(path).profiles) == profiles
    return {
        "profiles": profiles,
        "yaml_safe_load_ms": round(baseline * 1000, 2),
        "config_load_ms": round(load * 1000, 2),
        "yaml_libyaml_load_ms": round(c_baseline * 1000, 2),
        "config_load_vs_safe_load": round(load / baseline, 2),
        "config_load_vs_libyaml_load": round(load / c_baseline, 2),
        "validation_ms": round(validation * 1000, 2),
        "validation_vs_safe_load": round(validation / baseline, 2),
    }


def _make_files(root: Path, days: int, per_day: int, today: dt.date) -> list[Path]:
    created = []
    layouts = ("%Y-%m-%d/part-{i}.csv", "%Y/%m/%d/part-{i}.csv", "daily/events_%Y%m%d_{i}.csv")
    for day in range(days):
        moment = today - dt.timedelta(days=day)
        for index in range(per_day):
            relative = moment.strftime(layouts[index % len(layouts)]).format(i=index)
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x\n")
            created.append(path)
    return created


def bench_cleanup(files: int, repeat: int, workdir: Path) -> dict[str, Any]:
    """Retention deleting `files` expired files (plus as many kept) vs an os.remove loop over as many files."""
    from platform_assets.lake_sync.config import parse_config
    from platform_assets.lake_sync.retention import apply_retention
    from platform_assets.lib.config import get_settings

    today = dt.date(2026, 3, 15)
    retention_days = 30
    days = 2 * retention_days  # half the days are past retention
    per_day = max(1, files // retention_days)
    config = parse_config(
        yaml.safe_dump(
            {
                "profiles": {
                    "bench": {
                        "host": "collector.internal",
                        "remote_path": "/data",
                        "target": "landing/bench",
                        "retention_days": retention_days,
                    }
                }
            }
        )
    )
    profile = config.profile("bench")
    target = profile.target_dir(get_settings())
    rates, dry_rates, baseline_rates, deleted = [], [], [], 0
    for _ in range(repeat):
        _make_files(target, days, per_day, today)
        dry = apply_retention(profile, dry_run=True, today=today)
        dry_rates.append(len(dry.expired) / dry.duration_s)
        report = apply_retention(profile, dry_run=False, today=today)
        deleted = len(report.expired)
        rates.append(deleted / report.duration_s)
        # Baseline: the same number of files, deleted by a bare loop over a list built beforehand.
        plain = workdir / "plain"
        victims = _make_files(plain, retention_days, per_day, today)[:deleted]
        started = time.perf_counter()
        for path in victims:
            os.remove(path)
        baseline_rates.append(len(victims) / (time.perf_counter() - started))
        for leftover in sorted(plain.rglob("*"), reverse=True):
            leftover.unlink() if leftover.is_file() else leftover.rmdir()
        for leftover in sorted(target.rglob("*"), reverse=True):
            leftover.unlink() if leftover.is_file() else leftover.rmdir()
    rate, baseline = statistics.median(rates), statistics.median(baseline_rates)
    return {
        "expired_files_per_run": deleted,
        "kept_files_per_run": per_day * retention_days,
        "os_remove_files_per_s": round(baseline),
        "cleanup_files_per_s": round(rate),
        "cleanup_vs_os_remove": round(rate / baseline, 3),
        "dry_run_files_per_s": round(statistics.median(dry_rates)),
    }


def run(profiles: int = 20, files: int = 5000, repeat: int = 7) -> dict[str, Any]:
    """All figures, in a throwaway PLATFORM_DATA_DIR."""
    with tempfile.TemporaryDirectory(prefix="lake-sync-bench-") as temp:
        workdir = Path(temp)
        os.environ["PLATFORM_DATA_DIR"] = str(workdir / "platform")
        results = {
            **bench_config(profiles, repeat, workdir),
            **bench_cleanup(files, max(3, repeat // 2), workdir),
        }
    results["seed_figures"] = SEED_FIGURES
    return results


def main(argv: list[str] | None = None) -> int:
    """Print the figures (a table, or JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=20, help="profiles in the generated file")
    parser.add_argument("--files", type=int, default=5000, help="expired files per cleanup run")
    parser.add_argument("--repeat", type=int, default=7, help="repetitions (the median is reported)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    results = run(args.profiles, args.files, args.repeat)
    if args.json:
        print(json.dumps(results, sort_keys=True))
        return 0
    seed = results.pop("seed_figures")
    print("lake sync benchmark (medians; ratios against a baseline measured in the same run)")
    for key, value in results.items():
        print(f"  {key:28s} {value}")
    print(
        f"  seed figures: config load < {seed['config_load_ms']:.0f} ms, validation < "
        f"{seed['validation_ms']:.0f} ms, cleanup about {seed['cleanup_files_per_s']:.0f} files/s"
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
