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
