"""pandera schemas as Dagster types, built only when a value is type-checked.

dagster-pandera's `pandera_schema_to_dagster_type` needs the schema when definitions load, and importing
pandera imports pyspark (about a second), too much for every `dagster dev` reload. This type builds the
schema (`DatasetContract.pandera_schema`) on its first check instead, and reports pandera's failure cases.
"""

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
        name=name, type_check_fn=type_check, description=description, typing_type=pd.DataFrame
    )
