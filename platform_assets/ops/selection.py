"""Asset selections for `platform runs launch --select`, parsed by Dagster and resolved against the webserver's graph.

Each comma-separated clause goes to `dg.AssetSelection.from_string`, so both of Dagster's syntaxes work:

- the asset selection syntax of the Dagster UI: `key:"raw/reviews"` (one asset), `+key:"embedded/reviews"` (and
  everything upstream), `key:"raw/reviews"+` (and everything downstream), `1+key:…` / `key:…+2` (that many
  levels), `key:"*reviews"`, `group:reviews`, `kind:parquet`, `tag:k=v`, `sinks(…)`, `roots(…)`, `and`, `or`,
  `not`;
- the classic `--select` form of `dagster asset materialize`: `raw/reviews`, `raw/reviews+` (one level down per
  `+`), `*embedded/reviews` (everything upstream), `+key+`.

Note the depth of a bare `+`: one level in the classic form, unbounded in the new one.

The selection is resolved against a stand-in of the webserver's asset graph (keys, dependencies, groups, kinds,
tags, whether materializable), built from one GraphQL query: nothing of the code location is imported here.
Attributes only the webserver's instance or workspace knows (`status:`, `column:`, `code_location:`, `job:`,
`sensor:`, …) cannot be resolved that way and are named as such. dagster is imported on the first call only.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from platform_assets.ops.graphql.errors import PlatformGraphQLError, first_line

if TYPE_CHECKING:
    import dagster as dg

# Kinds reach the webserver as tags with this prefix; the stand-in declares them as kinds instead.
_KIND_TAG_PREFIX = "dagster/kind/"


@dataclass(frozen=True)
class AssetNodeInfo:
    """One asset of the webserver's workspace, as far as selecting and launching it needs."""

    key: str
    dependencies: tuple[str, ...]
    dependents: tuple[str, ...]
    group: str
    location: str
    repository: str
    partitioned: bool
    materializable: bool
    kinds: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()


class SelectionError(PlatformGraphQLError):
    """An asset selection names no asset, an unknown asset, or assets of different code locations."""


def resolve_selection(selection: str, nodes: Sequence[AssetNodeInfo]) -> list[str]:
    """Resolve an asset selection to the materializable asset keys it selects (slash-separated), sorted.

    Comma-separated clauses add up; the syntax of each is described in this module's docstring.
    """
    clauses = [clause.strip() for clause in selection.split(",")]
    if not any(clauses):
        raise SelectionError("empty asset selection")
    # One node per key: a key that two code locations define counts once (the last one), as in the launch.
    nodes = list({node.key: node for node in nodes}.values())
    graph = _stand_in_definitions(nodes).resolve_asset_graph()
    known_keys = {node.key for node in nodes}
    known_groups = {node.group for node in nodes}
    selected: set[str] = set()
    for clause in clauses:
        if not clause:
            raise SelectionError(f"empty clause in asset selection {selection!r}")
        parsed = _parse(clause)
        for kind, name in _literal_names(parsed):
            if kind == "asset" and name not in known_keys:
                raise SelectionError(
                    f"unknown asset {name!r} (assets: {', '.join(sorted(known_keys)) or 'none'})"
                )
            if kind == "group" and name not in known_groups:
                raise SelectionError(
                    f"no asset in group {name!r} (groups: {', '.join(sorted(known_groups))})"
                )
        try:
            keys = parsed.resolve(graph, allow_missing=True)
        except Exception as err:
            # Attributes that need the instance or the workspace fail in Dagster's resolver with CheckError or
            # NotImplementedError (not a DagsterError); either way the clause cannot be resolved here.
            raise SelectionError(
                f"cannot resolve {clause!r} from the webserver's asset graph ({first_line(err) or type(err).__name__})"
            ) from err
        selected |= {key.to_user_string() for key in keys}
    materializable = {node.key for node in nodes if node.materializable}
    launchable = sorted(selected & materializable)
    if not launchable:
        raise SelectionError(f"asset selection {selection!r} contains no materializable asset")
    return launchable


def _parse(clause: str) -> dg.AssetSelection:
    """One clause through Dagster's parser (the new syntax first, then the classic form)."""
    import dagster as dg

    with warnings.catch_warnings():
        # The parser passes its own beta `include_sources` parameter, which warns on every call.
        warnings.simplefilter("ignore", dg.BetaWarning)
        try:
            return dg.AssetSelection.from_string(clause)
        except dg.DagsterError as err:
            raise SelectionError(f"cannot parse asset selection clause {clause!r}") from err


def _literal_names(selection: dg.AssetSelection) -> Iterator[tuple[str, str]]:
    """("asset", key) and ("group", name) for each key and group a parsed selection names literally.

    A key or group that does not exist resolves to nothing; finding the names first lets the error say which
    one is wrong. Dagster's selection tree is walked by its attributes (`child`, `operands`, `left`, `right`);
    a node this does not know is skipped, and the clause then fails, if at all, as selecting nothing.
    """
    for key in getattr(selection, "selected_keys", None) or ():
        yield "asset", key.to_user_string()
    wildcard = getattr(selection, "selected_key_wildcard", None)
    if wildcard and "*" not in wildcard:
        yield "asset", wildcard
    for group in getattr(selection, "selected_groups", None) or ():
        yield "group", group
    children = [getattr(selection, name, None) for name in ("child", "left", "right")]
    for child in [*children, *(getattr(selection, "operands", None) or ())]:
        if child is not None:
            yield from _literal_names(child)


def _stand_in_definitions(nodes: Sequence[AssetNodeInfo]) -> dg.Definitions:
    """A stand-in of the webserver's asset graph: one never-executed multi-asset for the materializable assets,
    external asset specs for the rest, with the same keys, dependencies, groups, kinds and tags."""
    import dagster as dg

    def spec(node: AssetNodeInfo) -> dg.AssetSpec:
        return dg.AssetSpec(
            dg.AssetKey.from_user_string(node.key),
            # A time-partitioned asset may depend on its own earlier partitions; for selecting, that edge
            # adds nothing, and a stand-in without partitions may not have it.
            deps=[dg.AssetKey.from_user_string(dep) for dep in node.dependencies if dep != node.key],
            group_name=node.group,
            kinds=set(node.kinds),
            tags={key: value for key, value in node.tags if not key.startswith(_KIND_TAG_PREFIX)},
        )

    materializable = [spec(node) for node in nodes if node.materializable]
    assets: list[dg.AssetsDefinition | dg.AssetSpec] = [
        spec(node) for node in nodes if not node.materializable
    ]
    if materializable:

        @dg.multi_asset(specs=materializable, can_subset=True, name="webserver_assets")
        def _stand_in():  # no return annotation: Dagster would read `None` as the type of every output
            """Never runs: it only gives the materializable assets a definition to select."""

        assets.append(_stand_in)
    return dg.Definitions(assets=assets)
