"""Quality suites (Great Expectations), suite checks, quality scores, pandera schemas and the quality job."""

import dagster as dg
import pandas as pd
import pytest

from platform_assets.defs.reviews.quality import CleanedReviewsType
from platform_assets.defs.reviews.schemas import CleanedReviews, RawReviews
from platform_assets.lib import quality as q
from platform_assets.lib.config import PlatformSettings
from platform_assets.lib.lake import LakeIOManager

FRAME = pd.DataFrame(
    {
        "id": pd.array(["a", "b", "b", "d", None], dtype="string"),
        "amount": pd.array([1, 5, 50, -3, 2], dtype="Int64"),
        "kind": pd.array(["view", "click", "buy", "view", "view"], dtype="string"),
    }
)


def result_for(rule: q.Rule) -> q.RuleResult:
    (result,) = q.validate(FRAME, q.Suite(name="t", rules=[rule])).rules
    return result


@pytest.mark.parametrize(
    ("rule", "passed", "unexpected", "sample"),
    [
        (q.not_null("id"), False, 1, [None]),
        (q.null_ratio_below("id", 0.25), True, 1, [None]),
        (q.null_ratio_below("id", 0.1), False, 1, [None]),
        (q.between("amount", 0, 10), False, 2, [50, -3]),
        (q.between("amount", 0, 10, mostly=0.5), True, 2, [50, -3]),
        (q.in_set("kind", ["view", "click"]), False, 1, ["buy"]),
        (q.unique("id"), False, 2, ["b", "b"]),
        (q.matches_regex("id", r"^[a-c]$"), False, 1, ["d"]),
        (q.not_matches_regex("kind", r"^b"), False, 1, ["buy"]),
        (q.length_between("kind", 4, 5), False, 1, ["buy"]),
    ],
)
def test_rule_pass_fail_with_evidence(rule: q.Rule, passed: bool, unexpected: int, sample: list) -> None:
    result = result_for(rule)
    assert result.success is passed
    evidence = result.evidence()
    assert evidence["column"] == rule.column
    assert evidence["unexpected_count"] == unexpected
    assert evidence["sample"] == sample
    assert 0 < evidence["unexpected_percent"] <= 100


def test_table_rules_report_observed_values() -> None:
    assert result_for(q.row_count_between(1, 10)).success
    failed = result_for(q.row_count_between(min_value=6))
    assert not failed.success and failed.evidence()["observed_value"] == 5
    assert not result_for(q.column_exists("missing")).success
    assert result_for(q.column_exists("amount")).success


def test_quality_score_is_weighted_by_severity() -> None:
    suite = q.Suite(
        name="s",
        rules=[
            q.not_null("kind", severity="critical"),
            q.unique("id", severity="error"),
            q.in_set("kind", ["view"], severity="warning"),
        ],
    )
    result = q.validate(FRAME, suite)
    assert [r.success for r in result.rules] == [True, False, False]
    assert result.score == round(3 / 6, 4)
    assert not result.passed


def test_suite_check_puts_evidence_in_check_metadata(platform_env: PlatformSettings) -> None:
    @dg.asset(key=["raw", "frame"], io_manager_key="lake_io_manager")
    def frame() -> pd.DataFrame:
        return FRAME

    suite = q.Suite(
        name="frame_contract", blocking=True, rules=[q.not_null("kind"), q.between("amount", 0, 10)]
    )
    check = q.suite_check(dg.AssetKey(["raw", "frame"]), suite)
    result = dg.materialize(
        [frame, check], resources={"lake_io_manager": LakeIOManager()}, raise_on_error=False
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "frame_contract" and not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    assert metadata["quality_score"] == 0.5 and metadata["rules_passed"] == 1
    (failure,) = metadata["failed_rules"]
    assert (
        failure["column"] == "amount" and failure["unexpected_count"] == 2 and failure["sample"] == [50, -3]
    )
    assert failure["unexpected_percent"] == 40.0
    assert "| amount in [0, 10] | amount | 2 |" in metadata["failures"]


def test_score_metadata_over_suites() -> None:
    passing = q.Suite(name="a", rules=[q.not_null("kind")])
    failing = q.Suite(name="b", rules=[q.not_null("id", severity="critical")])
    metadata = q.score_metadata(FRAME, [passing, failing])
    assert metadata["quality/score"].value == round(2 / 5, 4)
    assert metadata["quality/rules_failed"].value == ["b: id is never null"]


def cleaned_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "review_id": pd.array(["r1", "r2"], dtype="string"),
            "product_id": pd.array(["p", "p"], dtype="string"),
            "user_id": pd.array(["u", "u"], dtype="string"),
            "rating": [4, 5],
            "text": pd.array(["Battery lasts for days.", "Screen is very sharp."], dtype="string"),
            "created_at": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True),
            "_source_file": pd.array(["f.csv", "f.csv"], dtype="string"),
            "_source_line": [2, 3],
        }
    )


def test_pandera_schemas_accept_good_and_list_every_failure() -> None:
    CleanedReviews.validate(cleaned_frame())
    bad = cleaned_frame()
    bad.loc[1, "review_id"] = "r1"
    bad.loc[0, "rating"] = 9
    import pandera.errors

    with pytest.raises(pandera.errors.SchemaErrors) as raised:
        CleanedReviews.validate(bad, lazy=True)
    failed = set(raised.value.failure_cases["column"])
    assert {"review_id", "rating"} <= failed
    raw = (
        cleaned_frame()
        .drop(columns=["rating"])
        .assign(
            rating=pd.array([None, 3], dtype="Int64"), _ingest_error=pd.array([None, None], dtype="string")
        )
    )
    RawReviews.validate(raw)


def test_pandera_dagster_type_fails_the_step_and_keeps_the_previous_output(
    platform_env: PlatformSettings,
) -> None:
    holder = {"frame": cleaned_frame()}

    @dg.asset(
        key=["cleaned", "reviews_like"], io_manager_key="lake_io_manager", dagster_type=CleanedReviewsType
    )
    def cleaned_like() -> pd.DataFrame:
        return holder["frame"]

    resources = {"lake_io_manager": LakeIOManager()}
    assert dg.materialize([cleaned_like], resources=resources).success
    holder["frame"] = cleaned_frame().assign(rating=[0, 7])
    result = dg.materialize([cleaned_like], resources=resources, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert (
        "CleanedReviews: 2 schema failure(s) in column(s) ['rating']"
        in failure.step_failure_data.error.to_string()
    )
    stored = pd.read_parquet(f"{platform_env.lake_uri}/cleaned/reviews_like.parquet")
    assert stored["rating"].tolist() == [4, 5]
