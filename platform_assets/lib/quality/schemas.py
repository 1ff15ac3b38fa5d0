"""pandera DataFrameModels as Dagster types, loaded only when a value is type-checked.

dagster-pandera's `pandera_schema_to_dagster_type` needs the model at definition time, and importing pandera
imports pyspark (about a second) — too much for every `dagster dev` reload. This type resolves the model
from "module:Class" at check time instead, and reports pandera's failure cases the same way.
"""

import importlib
from functools import cache
from typing import Any

import dagster as dg
import pandas as pd

FAILURE_SAMPLE = 20


@cache
def _model(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def pandera_dagster_type(name: str, model_path: str, description: str) -> dg.DagsterType:
    """A Dagster type that validates a DataFrame against the pandera model at `model_path` ("module:Class")."""

    def type_check(_context: Any, value: Any) -> dg.TypeCheck:
        if not isinstance(value, pd.DataFrame):
            return dg.TypeCheck(
                success=False, description=f"{name}: expected a pandas DataFrame, got {type(value).__name__}"
            )
        import pandera.errors

        try:
            _model(model_path).validate(value, lazy=True)
        except pandera.errors.SchemaErrors as err:
            cases = err.failure_cases
            columns = sorted({str(c) for c in cases["column"].dropna()})
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
