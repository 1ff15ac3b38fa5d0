"""The benchmark harness itself (no timings asserted): it runs the project's stages beside their baselines
and writes the contract keys, the markdown table and the history."""

import json
from pathlib import Path

import pytest

from benchmarks.suite import CONTRACT_KEYS, run


@pytest.mark.slow
def test_suite_writes_contract_keys_table_and_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # run() points these at its own work dir; monkeypatch restores them afterwards.
    monkeypatch.setenv("PLATFORM_DATA_DIR", str(tmp_path / "unused"))
    monkeypatch.setenv("PLATFORM_MODEL_CACHE_DIR", str(tmp_path / "models"))
    results_dir = tmp_path / "results"
    stages = ["ingest", "clean", "overhead", "end_to_end"]
    report = run(size=3000, embed_texts=50, stages=stages, results_dir=results_dir)

    latest = json.loads((results_dir / "latest.json").read_text())
    assert set(CONTRACT_KEYS) <= set(latest["results"])
    results = latest["results"]
    # The stages that ran filled their keys; the ones that did not are present and null.
    assert results["ingest_rows_per_s"] > 0 and results["ingest_vs_pyarrow"] > 0
    assert results["clean_rows_per_s"] > 0 and results["clean_vs_pandas"] > 0
    assert results["clean_rows_in"] == results["ingest_rows"] == report["sizes"]["landing"]["rows"]
    assert results["clean_rows_out"] + results["clean_rows_quarantined"] == results["clean_rows_in"]
    assert results["dagster_overhead_ratio"] > 0
    assert results["embed_texts_per_s"] is None and results["search_p95_ms_1m"] is None
    assert results["end_to_end_extrapolated"] is False
    assert latest["machine"]["cores"] and latest["sizes"]["reviews"] == 3000

    table = (results_dir / "latest.md").read_text()
    assert "| `clean_vs_pandas` |" in table and ">= 3" in table
    run(size=2000, embed_texts=50, stages=["ingest"], results_dir=results_dir)
    history = (results_dir / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["sizes"]["reviews"] for line in history] == [3000, 2000]
    assert (results_dir / "history.md").read_text().count("| figure | value | target | met |") == 2


def test_a_run_of_some_stages_keeps_the_other_stages_figures_in_latest(tmp_path: Path) -> None:
    from benchmarks.suite import markdown, with_earlier_figures

    earlier = {
        "started_at": "2026-11-01 10:00 UTC",
        "results": {"clean_vs_pandas": 6.8, "ingest_vs_pyarrow": 0.3},
    }
    (tmp_path / "latest.json").write_text(json.dumps(earlier))
    report = {
        "started_at": "2026-12-01 10:00 UTC",
        "machine": {"cpu": "x", "cores": 2, "gpu": None, "load_average_at_start": [0, 0, 0]},
        "sizes": {},
        "duration_s": 1,
        "results": {"clean_vs_pandas": None, "ingest_vs_pyarrow": 0.5},
    }
    latest = with_earlier_figures(report, tmp_path / "latest.json")
    assert latest["results"] == {"clean_vs_pandas": 6.8, "ingest_vs_pyarrow": 0.5}
    assert latest["carried_over"] == {"from": {"clean_vs_pandas": "2026-11-01 10:00 UTC"}}
    assert "from earlier runs: 2026-11-01 10:00 UTC" in markdown(latest)
    assert report["results"]["clean_vs_pandas"] is None  # the run itself, as the history keeps it
