"""A dataset's contract, declared once: its columns (type, nullability, description), key and value rules.

Whatever validates or describes a dataset is derived from its contract:

- `reader_schema()`: the column types the landing reader enforces (`platform_assets.lib.landing.read_landing`);
- `pandera_schema()`: the structure checked when the dataset is written, as the asset's Dagster type;
- `suite`: the expectation suite with the value rules, run as one asset check (`lib.quality.suite_check`);
- `column_schema()`: the columns with their descriptions and constraints, for the Dagster UI.

Each rule is checked in one place. Structure is checked at write time: the columns are present with their
dtypes, and lineage columns (written by the platform, not the source) are never null where the contract
says so; a failure there is a bug in the code that made the frame, and the step fails before anything is
stored. Values (nulls in delivered columns, the key, ranges, lengths, patterns, codes) are the suite's: an
asset check, scored, blocking where the contract says so, that names every failed rule with its evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Literal

import dagster as dg

from platform_assets.lib.quality.rules import Rule, Suite, not_null, unique

if TYPE_CHECKING:
    import pandera.pandas as pa

# "vector": a fixed-width float32 array per row (an embedding); every other type is one the landing reader knows.
ColumnType = Literal["string", "int", "float", "timestamp", "vector"]
_DISPLAY_TYPES = {
    "string": "string",
    "int": "int64",
    "float": "float64",
    "timestamp": "timestamp (UTC)",
    "vector": "vector<float32>",
}


@dataclass(frozen=True)
class Column:
    """One column: its name, logical type, meaning, and whether it may be null.

    `lineage`: written by the platform (source file, line, ingest errors), not delivered by the source; its
    nullability is structure, checked at write time. A delivered column's nullability is a value rule,
    checked by the suite (`<column> is never null`).
    """

    name: str
    type: ColumnType
    description: str
    nullable: bool = True
    lineage: bool = False

    def pandas_dtype(self) -> object:
        """The pandas dtype a frame holds this column in (None: any; vectors are object arrays)."""
        import pandas as pd

        if self.type == "string":
            return pd.StringDtype()
        if self.type == "timestamp":
            return pd.DatetimeTZDtype("ns", "UTC")
        if self.type == "int":
            return "Int64" if self.nullable else "int64"
        if self.type == "float":
            return "Float64" if self.nullable else "float64"
        return None


@dataclass(frozen=True)
class DatasetContract:
    """A dataset's columns, key and value rules, and the asset check that enforces the rules.

    `rules`: the value rules beyond what the columns and key already say (`not_null` for every non-nullable
    delivered column and `unique` for the key are added to the suite). `checked_columns`: the only columns
    the suite reads (all when empty), for stores where loading every column costs more than it tells.
    """

    name: str
    columns: tuple[Column, ...]
    check: str
    check_description: str = ""
    rules: tuple[Rule, ...] = ()
    key: str | None = None
    blocking: bool = False
    checked_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: a column is declared twice in {names}")
        ruled = {r.column for r in self.rules if r.column}
        keys = {self.key} if self.key else set()
        unknown = (ruled | set(self.checked_columns) | keys) - set(names)
        if unknown:
            raise ValueError(
                f"{self.name}: the key, rules or checked columns name undeclared {sorted(unknown)}"
            )
        if self.checked_columns and ruled - set(self.checked_columns):
            unread = sorted(ruled - set(self.checked_columns))
            raise ValueError(f"{self.name}: rules on columns the suite does not read: {unread}")

    @property
    def asset_key(self) -> dg.AssetKey:
        """The asset key the dataset is stored under (`name` split on '/')."""
        return dg.AssetKey(self.name.split("/"))

    @property
    def column_names(self) -> list[str]:
        """The declared columns, in order."""
        return [c.name for c in self.columns]

    def reader_schema(self) -> dict[str, ColumnType]:
        """The delivered columns and their types, as the landing reader takes them (lineage columns it adds)."""
        return {c.name: c.type for c in self.columns if not c.lineage}

    def pandera_schema(self) -> pa.DataFrameSchema:
        """Structure only: every column present with its dtype, lineage columns null only where allowed.

        Extra columns are allowed (deliveries may carry more). Imports pandera (about a second), so call it
        when a frame is checked, not when definitions load.
        """
        import pandera.pandas as pa

        return pa.DataFrameSchema(
            {
                c.name: pa.Column(c.pandas_dtype(), nullable=c.nullable or not c.lineage, required=True)
                for c in self.columns
            },
            name=self.name,
            strict=False,
        )

    @cached_property
    def suite(self) -> Suite:
        """The expectation suite of the value rules: table rules, then nulls and the key, then column rules."""
        checked = set(self.checked_columns or self.column_names)
        implied = [
            not_null(c.name, severity="critical")
            for c in self.columns
            if not c.nullable and not c.lineage and c.name in checked
        ]
        if self.key and self.key in checked:
            implied.append(unique(self.key))
        return Suite(
            name=self.check,
            rules=[
                *(r for r in self.rules if r.column is None),
                *implied,
                *(r for r in self.rules if r.column is not None),
            ],
            blocking=self.blocking,
            description=self.check_description,
            columns=tuple(self.checked_columns),
        )

    def column_schema(self) -> dg.TableSchema:
        """The columns with descriptions and constraints (nullable, unique, value rules) for the Dagster UI.

        Put it on the asset definition's metadata under `dagster/column_schema`: the UI merges these
        descriptions into the schema each materialization records.
        """
        columns = [
            dg.TableColumn(
                name=c.name,
                type=_DISPLAY_TYPES[c.type],
                description=c.description,
                constraints=dg.TableColumnConstraints(
                    nullable=c.nullable,
                    unique=c.name == self.key,
                    other=[r.description for r in self.rules if r.column == c.name],
                ),
            )
            for c in self.columns
        ]
        table_rules = [r.description for r in self.rules if r.column is None]
        return dg.TableSchema(columns=columns, constraints=dg.TableConstraints(other=table_rules))

    def definition_metadata(self) -> dict[str, dg.TableSchema]:
        """Asset definition metadata derived from the contract (today: `dagster/column_schema`)."""
        return {"dagster/column_schema": self.column_schema()}
