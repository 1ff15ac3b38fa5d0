"""Quality suites (Great Expectations), suite checks, quality scores, dataset contracts and their pandera types."""

import dagster as dg
import pandas as pd
import pytest

from platform_assets.defs.reviews.assets import CleanedReviewsType
from platform_assets.defs.reviews.checks import cleaned_contract
from platform_assets.defs.reviews.contract import CLEANED_REVIEWS, RAW_REVIEWS
from platform_assets.defs.reviews.partitions import DELIVERY_COLUMN, review_deliveries
from platform_assets.lib import quality as q
from platform_assets.lib.config import PlatformSettings
from platform_assets.lib.contract import Column, DatasetContract
from platform_assets.lib.lake import LakeIOManager, open_catalog, read_arrow

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
            # The hash of user, product and text that cleaning adds for the next delivery's duplicate check.
            "_content_key": pd.array([-4_611_686_018_427_387_904, 12_345], dtype="int64"),
        }
    )


def test_pandera_schemas_check_structure_only() -> None:
    """pandera holds columns, dtypes and lineage nulls; value rules (key, range) are left to the suite."""
    CLEANED_REVIEWS.pandera_schema().validate(cleaned_frame())
    values_broken = cleaned_frame()
    values_broken.loc[1, "review_id"] = "r1"
    values_broken.loc[0, "rating"] = 9
    CLEANED_REVIEWS.pandera_schema().validate(values_broken)
    import pandera.errors

    structure_broken = (
        cleaned_frame()
        .drop(columns=["created_at"])
        .assign(rating=["4", "5"], _source_file=pd.array(["f.csv", None], dtype="string"))
    )
    with pytest.raises(pandera.errors.SchemaErrors) as raised:
        CLEANED_REVIEWS.pandera_schema().validate(structure_broken, lazy=True)
    cases = raised.value.failure_cases
    assert set(cases["column"].dropna()) >= {"rating", "_source_file"}
    assert cases.loc[cases["check"] == "column_in_dataframe", "failure_case"].tolist() == ["created_at"]
    raw = (
        cleaned_frame()
        .drop(columns=["rating", "_content_key"])
        .assign(
            rating=pd.array([None, 3], dtype="Int64"), _ingest_error=pd.array([None, None], dtype="string")
        )
    )
    RAW_REVIEWS.pandera_schema().validate(raw)


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
    holder["frame"] = cleaned_frame().assign(rating=[4.0, 5.0])
    result = dg.materialize([cleaned_like], resources=resources, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert (
        "CleanedReviews: 1 schema failure(s) in column(s) ['rating']"
        in failure.step_failure_data.error.to_string()
    )
    stored = read_arrow(open_catalog(), "cleaned/reviews_like").to_pandas()
    assert stored["rating"].tolist() == [4, 5]


def test_a_broken_value_rule_is_reported_by_name_by_the_blocking_contract_check(
    platform_env: PlatformSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A duplicate id and an out-of-range rating pass the type (structure) and fail `cleaned_contract`,
    which names both rules with their evidence and keeps everything downstream from running."""
    bad = cleaned_frame()
    bad.loc[1, "review_id"] = "r1"
    bad.loc[0, "rating"] = 9

    @dg.asset(
        key=CLEANED_REVIEWS.asset_key,
        io_manager_key="lake_io_manager",
        dagster_type=CleanedReviewsType,
        partitions_def=review_deliveries,
        metadata={"lake/partition_column": DELIVERY_COLUMN},
    )
    def cleaned() -> pd.DataFrame:
        return bad

    @dg.asset(deps=[cleaned], partitions_def=review_deliveries)
    def downstream() -> None:
        raise AssertionError("a failed blocking check must keep this from running")

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(review_deliveries.name, ["f.csv"])
    # The check reads the partition from the lake a batch at a time: two batches of one row here, so the
    # duplicate id is only found across batches.
    monkeypatch.setenv("PLATFORM_CHUNK_ROWS", "1")
    result = dg.materialize(
        [cleaned, downstream, cleaned_contract],
        resources={"lake_io_manager": LakeIOManager()},
        raise_on_error=False,
        instance=instance,
        partition_key="f.csv",
    )
    assert not result.success
    assert not [e for e in result.all_events if e.is_step_failure and e.step_key == "cleaned__reviews"]
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "cleaned_contract" and not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    failed = {f["rule"]: f for f in evaluation.metadata["failed_rules"].value}
    assert set(failed) == {"review_id is unique", "rating in [1, 5]"}
    assert failed["review_id is unique"]["sample"] == ["r1", "r1"]
    assert failed["rating in [1, 5]"]["sample"] == [9]
    assert "downstream" not in {
        e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
    }


def test_a_check_reuses_the_score_its_asset_computed_in_the_same_run(
    platform_env: PlatformSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = q.Suite(name="frame_rules", rules=[q.between("amount", 0, 10)])
    calls: list[str] = []
    validate = q.validate

    def counting(frame: pd.DataFrame, suite: q.Suite) -> q.SuiteResult:
        calls.append(suite.name)
        return validate(frame, suite)

    monkeypatch.setattr("platform_assets.lib.quality.checks.validate", counting)

    @dg.asset(key=["raw", "frame"], io_manager_key="lake_io_manager")
    def frame(context: dg.AssetExecutionContext) -> dg.Output:
        return dg.Output(FRAME, metadata=q.score_metadata(FRAME, [suite], context))

    check = q.suite_check(dg.AssetKey(["raw", "frame"]), suite)
    result = dg.materialize([frame, check], resources={"lake_io_manager": LakeIOManager()})
    (evaluation,) = result.get_asset_check_evaluations()
    assert calls == ["frame_rules"]
    assert not evaluation.passed and evaluation.metadata["failed_rules"].value[0]["sample"] == [50, -3]
    # Alone (as the quality job runs it), the check validates the stored frame itself.
    alone = dg.materialize(
        [frame, check],
        selection=dg.AssetSelection.checks(check),
        resources={"lake_io_manager": LakeIOManager()},
    )
    assert calls == ["frame_rules", "frame_rules"]
    assert not alone.get_asset_check_evaluations()[0].passed


def test_a_contract_derives_reader_schema_suite_and_described_columns() -> None:
    contract = DatasetContract(
        name="cleaned/things",
        columns=(
            Column("id", "string", "The thing's id.", nullable=False),
            Column("size", "int", "Its size in cm."),
            Column("_source_file", "string", "Where it came from.", nullable=False, lineage=True),
        ),
        key="id",
        check="things_contract",
        blocking=True,
        rules=(q.row_count_between(min_value=1), q.between("size", 0, 100)),
    )
    assert contract.asset_key == dg.AssetKey(["cleaned", "things"])
    assert contract.reader_schema() == {"id": "string", "size": "int"}
    assert [r.description for r in contract.suite.rules] == [
        "row count in [1, inf]",
        "id is never null",
        "id is unique",
        "size in [0, 100]",
    ]
    assert contract.suite.name == "things_contract" and contract.suite.blocking
    schema = contract.definition_metadata()["dagster/column_schema"]
    by_name = {c.name: c for c in schema.columns}
    assert by_name["size"].description == "Its size in cm." and by_name["size"].type == "int64"
    assert by_name["id"].constraints.unique and not by_name["id"].constraints.nullable
    assert by_name["size"].constraints.other == ["size in [0, 100]"]
    assert schema.constraints.other == ["row count in [1, inf]"]
    with pytest.raises(ValueError, match="undeclared"):
        DatasetContract(name="x/y", columns=contract.columns, check="c", rules=(q.not_null("nope"),))


def test_every_reviews_column_is_described_in_the_ui() -> None:
    from platform_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for contract in (RAW_REVIEWS, CLEANED_REVIEWS):
        schema = graph.get(contract.asset_key).metadata["dagster/column_schema"]
        assert [c.name for c in schema.columns] == contract.column_names
        assert all(c.description for c in schema.columns)


def _summary(result: q.SuiteResult) -> list[tuple]:
    return [
        (
            r.rule.description,
            r.success,
            r.unexpected_count,
            round(r.unexpected_percent or 0.0, 6),
            r.observed_value,
        )
        for r in result.rules
    ]


@pytest.mark.parametrize("piece_rows", [1, 2, 3, 5])
def test_a_suite_validated_piece_by_piece_gives_the_whole_frames_result(piece_rows: int) -> None:
    """Counts, shares (`mostly` over the totals), uniqueness across pieces and the row count are the same as
    one validation of the whole frame, however the frame is cut."""
    suite = q.Suite(
        name="pieces",
        rules=[
            q.row_count_between(1, 4),
            q.column_exists("kind"),
            q.not_null("id"),
            q.null_ratio_below("id", 0.25),
            q.between("amount", 0, 10, mostly=0.5),
            q.in_set("kind", ["view", "click"]),
            q.unique("id"),
            q.not_matches_regex("kind", r"^b"),
        ],
    )
    accumulator = q.SuiteAccumulator(suite)
    for start in range(0, len(FRAME), piece_rows):
        accumulator.add(FRAME.iloc[start : start + piece_rows])
    pieces, whole = accumulator.result(), q.validate(FRAME, suite)
    assert _summary(pieces) == _summary(whole)
    assert pieces.rows == whole.rows == len(FRAME)
    assert pieces.score == whole.score < 1.0
    unique_rule = pieces.rules[6]
    assert sorted(unique_rule.sample) == ["b", "b"]


def test_a_suite_over_no_rows_is_the_empty_frames_result() -> None:
    suite = q.Suite(name="empty", rules=[q.row_count_between(1), q.not_null("id")])
    accumulator = q.SuiteAccumulator(suite)
    accumulator.add(FRAME.head(0))
    assert _summary(accumulator.result()) == _summary(q.validate(FRAME.head(0), suite))
    assert not accumulator.result().passed
