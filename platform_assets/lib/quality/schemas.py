"""pandera schemas as Dagster types, built only when a value is type-checked.

dagster-pandera's `pandera_schema_to_dagster_type` needs the schema when definitions load, and importing
pandera imports pyspark (about a second), too much for every `dagster dev` reload. This type builds the
schema (`DatasetContract.pandera_schema`) on its first check instead, and reports pandera's failure cases.
"""

import json
from collections.abc import Callable
from functools import cache
from typing import Any

import dagster as dg
import pandas as pd

FAILURE_SAMPLE = 20


def pandera_dagster_type(name: str, schema: Callable[[], Any], description: str) -> dg.DagsterType:
    """A Dagster type that validates a DataFrame with the pandera schema `schema()` returns (built once)."""
    load = cache(schema)

    def type_check(_context: Any, value: Any) -> dg.TypeCheck:
        from platform_assets.lib.lake import TableWriter

        if isinstance(value, TableWriter):
            return _check_staged(name, load(), value)
        if value is None:
            from platform_assets.lib.ray_jobs import runs_as_ray_job

            if runs_as_ray_job():
                # The step's Ray job wrote and committed the data; it ran this same check on its writer first
                # (platform_assets/jobs/clean.py).
                return dg.TypeCheck(
                    success=True, description=f"{name}: written and checked by the step's Ray job"
                )
        if not isinstance(value, pd.DataFrame):
            return dg.TypeCheck(
                success=False, description=f"{name}: expected a pandas DataFrame, got {type(value).__name__}"
            )
        import pandera.errors

        try:
            load().validate(value, lazy=True)
        except pandera.errors.SchemaErrors as err:
            cases = err.failure_cases
            # A missing column is reported against the schema, with the column's name as the failure case.
            missing = cases["check"] == "column_in_dataframe"
            columns = sorted(
                {str(c) for c in cases.loc[~missing, "column"].dropna()}
                | {str(c) for c in cases.loc[missing, "failure_case"]}
            )
            return dg.TypeCheck(
                success=False,
                description=f"{name}: {len(cases)} schema failure(s) in column(s) {columns}",
                metadata={
                    "failure_cases": dg.MetadataValue.md(
                        cases.head(FAILURE_SAMPLE).astype(str).to_markdown(index=False)
                    ),
                    "failed_columns": dg.MetadataValue.json(columns),
                },
            )
        return dg.TypeCheck(success=True, metadata={"rows": len(value)})

    return dg.DagsterType(
        name=name,
        type_check_fn=type_check,
        description=description
        + " Also accepts a lake write staged in pieces (its columns, dtypes and null counts).",
        typing_type=pd.DataFrame,
    )


def _check_staged(name: str, schema: Any, writer: Any) -> dg.TypeCheck:
    """The structure of a staged lake write, from what the writer recorded: every column present with its
    dtype (pandera on the rows' empty frame, typed as the written frames were), no nulls where none may be."""
    import pandera.errors

    from platform_assets.lib.lake import with_pandas_dtypes

    if writer.schema is None:
        return dg.TypeCheck(success=False, description=f"{name}: nothing was written")
    failures: list[str] = []
    empty = writer.schema.empty_table()
    if writer.pandas_metadata:
        # The columns the written frames had (the table may hold more, from other partitions).
        written = [c.get("name") for c in json.loads(writer.pandas_metadata).get("columns", [])]
        empty = empty.select([column for column in written if column in empty.column_names])
    try:
        schema.validate(with_pandas_dtypes(empty, writer.pandas_metadata), lazy=True)
    except pandera.errors.SchemaErrors as err:
        cases = err.failure_cases
        failures += [
            f"{column}: {check}" for column, check in zip(cases["column"], cases["check"], strict=True)
        ]
    nulls = {
        column: writer.null_counts.get(column, 0)
        for column, spec in schema.columns.items()
        if not spec.nullable and writer.null_counts.get(column, 0)
    }
    failures += [f"{column}: {count} null values" for column, count in nulls.items()]
    if failures:
        return dg.TypeCheck(
            success=False,
            description=f"{name}: {len(failures)} schema failure(s): {failures[:FAILURE_SAMPLE]}",
            metadata={"failures": dg.MetadataValue.json(failures[:FAILURE_SAMPLE])},
        )
    return dg.TypeCheck(success=True, metadata={"rows": writer.rows})
