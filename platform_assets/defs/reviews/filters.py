"""The `where` filter of semantic search, parsed whole before LanceDB sees it.

LanceDB parses a filter as `SELECT 1 FROM t WHERE <filter>` and runs the first statement it finds, so
`rating = 5) AND (rating = 1` ran as `rating = 5` and `rating <= 2; DROP TABLE reviews` as `rating <= 2`.
Here sqlglot parses the whole text as one condition: a token left over, a semicolon, a comment, a
subquery, a parameter, a function outside `ALLOWED_FUNCTIONS` or a column the table does not have is a
`FilterError` that names the problem and the character where it is. What LanceDB then runs is the SQL
generated from the checked tree, not the text, so nothing the check did not see reaches it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlglot import exp
    from sqlglot.tokens import Token

# The kinds `check_filter` distinguishes: a string literal compared with a timestamp or date column is
# read as one (LanceDB refuses to compare a timestamp column with a string); "boolean" columns are
# conditions on their own.
TIMESTAMP, DATE, BOOLEAN, OTHER = "timestamp", "date", "boolean", "other"
ALLOWED_FUNCTIONS = ("LOWER", "UPPER")
# A longer filter is cut in messages (the position still counts in the whole text).
MAX_SHOWN_CHARS = 200


class FilterError(ValueError):
    """A filter that is not one condition over known columns.

    `position` is the 0-based character offset of the problem in `filter` (None when it has no place).
    """

    def __init__(self, filter: str, problem: str, position: int | None = None) -> None:
        where = f" at character {position + 1}" if position is not None else ""
        shown = filter if len(filter) <= MAX_SHOWN_CHARS else filter[:MAX_SHOWN_CHARS] + "…"
        super().__init__(f"invalid filter {shown!r}{where}: {problem}")
        self.filter = filter
        self.problem = problem
        self.position = position


def check_filter(where: str, columns: Mapping[str, str]) -> str:
    """The SQL LanceDB should run for the filter `where`, or FilterError when it is not one condition.

    `columns` maps each column a filter may use to its kind (TIMESTAMP, DATE, BOOLEAN or OTHER). Unquoted
    names match case-insensitively, as LanceDB resolves them. Allowed: comparisons, AND/OR/NOT,
    [NOT] IN lists, [NOT] BETWEEN, [NOT] LIKE/ILIKE, IS [NOT] NULL, arithmetic, CAST, typed literals
    (`timestamp '2026-01-01'`) and the functions in ALLOWED_FUNCTIONS.
    """
    return _check_filter(where, tuple(sorted(columns.items())))


@lru_cache(maxsize=256)
def _check_filter(where: str, columns: tuple[tuple[str, str], ...]) -> str:
    # Cached: the search benchmark sends the same filter with every query.
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    try:
        tokens = sqlglot.tokenize(where)
    except TokenError as err:
        raise _token_error(where, err) from None
    _check_tokens(where, tokens)
    if not tokens:
        raise FilterError(where, "the filter is empty")
    try:
        # The whole token list must form one condition: a token left over is a parse error at that token.
        (tree,) = (
            sqlglot.Dialect()
            .parser(error_message_context=len(where))
            .parse_into(exp.Condition, tokens, where)
        )
        if tree is None:
            raise FilterError(where, "not a condition")
        _check_tree(where, tree, dict(columns))
        return tree.sql()
    except ParseError as err:
        raise _parse_error(where, err) from None
    except RecursionError:
        # sqlglot parses and writes SQL recursively: a few dozen nested parentheses exhaust the stack.
        raise FilterError(
            where, "the filter is nested too deeply; use fewer parentheses or an IN list"
        ) from None


# Tokens that have no place in a filter: a statement separator, a statement, a query parameter.
_FORBIDDEN_TOKENS = {
    "SEMICOLON": "a ';' (a filter is one condition, not statements)",
    "SELECT": "a query (SELECT)",
    "WITH": "a query (WITH)",
    "PLACEHOLDER": "a query parameter",
    "PARAMETER": "a query parameter",
    "COLON": "a query parameter",
}


def _check_tokens(where: str, tokens: list[Token]) -> None:
    """Refuse forbidden tokens and comments: the tokenizer skips only whitespace and comments, so any other
    text between two tokens is a comment."""
    for token in tokens:
        if token.token_type.name in _FORBIDDEN_TOKENS:
            raise FilterError(where, f"found {_FORBIDDEN_TOKENS[token.token_type.name]}", token.start)
    gap_starts = [0, *(token.end + 1 for token in tokens)]
    gap_ends = [*(token.start for token in tokens), len(where)]
    for start, end in zip(gap_starts, gap_ends, strict=True):
        gap = where[start:end]
        if gap.strip():
            offset = start + len(gap) - len(gap.lstrip())
            raise FilterError(where, "found a comment (comments are not allowed in a filter)", offset)


_MISSING_END = re.compile(r"from (\d+):(\d+)$")


def _token_error(where: str, err: Exception) -> FilterError:
    """A FilterError for text sqlglot cannot split into tokens (an unclosed quote or comment)."""
    match = _MISSING_END.search(str(err.__cause__ or ""))
    if match:  # "Missing ' from 1:13": the opening quote's offset
        quote = where[int(match.group(2))] if int(match.group(2)) < len(where) else "'"
        return FilterError(where, f"found a {quote} that is never closed", int(match.group(2)))
    return FilterError(where, "the filter ends inside a string, a quoted name or a comment", len(where))


def _parse_error(where: str, err: Exception) -> FilterError:
    """A FilterError for text that does not parse as one condition, at the token where parsing stopped."""
    details = err.errors[0] if getattr(err, "errors", None) else {}
    found = details.get("highlight")
    if found is None:
        return FilterError(where, "not a condition")
    # The parser was told to keep all the text before the token as context: its length is the offset.
    position = len(details.get("start_context") or "")
    description = re.sub(r"<class '[\w.]+\.(\w+)'>", r"\1", details.get("description") or "")
    if "Unexpected token" in description or "Invalid expression" in description:
        problem = f"unexpected {found!r}"
        if position > 0:
            problem += " (the filter must be one condition: nothing may follow it)"
    elif position + len(found) >= len(where.rstrip()):
        problem = f"the filter ends too early after {found!r} ({description})"
    else:
        problem = f"{description} near {found!r}"
    return FilterError(where, problem, position)


def _check_tree(where: str, tree: exp.Expr, columns: dict[str, str]) -> None:
    """Check that `tree` is a condition built only from allowed nodes and known columns; name each column
    canonically, quoted, and read string literals compared with timestamp or date columns as such."""
    from sqlglot import exp

    problems: list[tuple[int, str]] = []
    for node in tree.walk():
        found = _node_problem(node, columns)
        if found:
            where_found, problem = found
            problems.append((_position(where_found) or 0, problem))
    if problems:  # the first in the text
        position, problem = min(problems)
        raise FilterError(where, problem, position)
    if not _is_condition(tree, columns):
        raise FilterError(
            where, f"{tree.sql()!r} is not a condition (true or false for each row)", _position(tree)
        )
    for column in list(tree.find_all(exp.Column)):
        column.set("this", exp.to_identifier(_resolve(column, columns), quoted=True))
    comparisons = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Between)
    for node in list(tree.find_all(*comparisons)):
        _type_literals(node, columns)


def _allowed_nodes() -> tuple[type, ...]:
    from sqlglot import exp

    return (
        *_predicates(),
        exp.And,
        exp.Or,
        exp.Not,
        exp.Paren,
        exp.Column,
        exp.Identifier,
        exp.Literal,
        exp.Null,
        exp.Boolean,
        exp.Neg,
        exp.Add,
        exp.Sub,
        exp.Mul,
        exp.Div,
        exp.Mod,
        exp.Cast,
        exp.DataType,
        exp.DataTypeParam,
    )


def _predicates() -> tuple[type, ...]:
    from sqlglot import exp

    return (
        exp.EQ,
        exp.NEQ,
        exp.GT,
        exp.GTE,
        exp.LT,
        exp.LTE,
        exp.Is,
        exp.In,
        exp.Between,
        exp.Like,
        exp.ILike,
    )


def _node_problem(node: exp.Expr, columns: dict[str, str]) -> tuple[exp.Expr, str] | None:
    """What is wrong with one node of the tree (the node to point at and the problem), or None."""
    from sqlglot import exp

    if isinstance(node, exp.Column):
        if node.table:
            return node, f"{node.sql()!r}: name the column alone, without a table"
        if _resolve(node, columns) is None:
            return node, f"unknown column {node.name!r} (the columns are: {', '.join(sorted(columns))})"
        return None
    if isinstance(node, exp.In):
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            return node, f"{node.sql()!r}: IN takes a list of values"
        if not node.expressions:
            return node, f"{node.sql()!r}: IN needs at least one value"
    if isinstance(node, (exp.And, exp.Or, exp.Not)):
        operands = [node.this] if isinstance(node, exp.Not) else [node.left, node.right]
        for operand in operands:
            unknown = isinstance(operand, exp.Column) and _resolve(operand, columns) is None
            if not unknown and not _is_condition(operand, columns):  # an unknown column reports itself
                return operand, f"{operand.sql()!r} is not a condition (true or false for each row)"
        return None
    if isinstance(node, _allowed_nodes()):
        return None
    if isinstance(node, exp.Func):
        name = node.name.upper() if isinstance(node, exp.Anonymous) else node.sql_name()
        if name not in ALLOWED_FUNCTIONS:
            return node, f"function {name} is not allowed (allowed: {', '.join(ALLOWED_FUNCTIONS)})"
        return None
    return node, f"{node.sql()!r} is not allowed in a filter"


def _is_condition(node: exp.Expr, columns: dict[str, str]) -> bool:
    """True when `node` is true or false for each row (a predicate, a boolean column or literal)."""
    from sqlglot import exp

    pending = [node]  # a loop, not recursion: a long chain of ORs is as deep as it is long
    while pending:
        node = pending.pop()
        if isinstance(node, exp.Paren):
            pending.append(node.this)
        elif isinstance(node, (exp.And, exp.Or)):
            pending += [node.left, node.right]
        elif isinstance(node, exp.Not):
            pending.append(node.this)
        elif isinstance(node, exp.Column):
            if columns.get(_resolve(node, columns) or "") != BOOLEAN:
                return False
        elif not isinstance(node, (*_predicates(), exp.Boolean)):
            return False
    return True


def _resolve(column: exp.Column, columns: Mapping[str, str]) -> str | None:
    """The table's name for `column`: quoted names match exactly, unquoted ones case-insensitively."""
    name = column.name
    if name in columns:
        return name
    identifier = column.this
    if getattr(identifier, "quoted", False):
        return None
    matches = [known for known in columns if known.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


def _type_literals(predicate: exp.Expr, columns: dict[str, str]) -> None:
    """In a comparison with a timestamp or date column, read string literals as timestamps or dates."""
    from sqlglot import exp

    kinds = {columns.get(column.name) for column in predicate.find_all(exp.Column)}
    kind = TIMESTAMP if TIMESTAMP in kinds else DATE if DATE in kinds else None
    if kind is None:
        return
    operands = [predicate.args.get(key) for key in ("this", "expression", "low", "high")]
    operands += list(predicate.args.get("expressions") or [])
    for operand in operands:
        if isinstance(operand, exp.Literal) and operand.is_string:
            operand.replace(exp.cast(operand.copy(), kind.upper()))


def _position(node: exp.Expr) -> int | None:
    """The offset of the first character of `node` in the filter, where the parser recorded one."""
    starts = [n.meta["start"] for n in node.walk() if "start" in n.meta]
    return min(starts) if starts else None


def filter_columns(schema: pa.Schema) -> dict[str, str]:
    """The columns of a table a filter may use, with their kinds: every scalar column (not the vectors)."""
    import pyarrow as pa

    columns = {}
    for field in schema:
        kind = field.type
        if pa.types.is_nested(kind):  # the vector (a fixed-size list) and any list or struct
            continue
        if pa.types.is_timestamp(kind):
            columns[field.name] = TIMESTAMP
        elif pa.types.is_date(kind):
            columns[field.name] = DATE
        elif pa.types.is_boolean(kind):
            columns[field.name] = BOOLEAN
        else:
            columns[field.name] = OTHER
    return columns
