"""Streaming one landing file in chunks: the same rows, types, lineage and errors as `read_landing`, in memory
bounded by the chunk and one block of the file."""

import csv
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from platform_assets.lib.landing import (
    LINEAGE_COLUMNS,
    LandingFileError,
    LandingFileStream,
    LandingReport,
    iter_landing_file,
    read_landing,
)

SCHEMA = {"a": "string", "n": "int", "t": "timestamp", "f": "float"}
REVIEWS = {
    "review_id": "string",
    "product_id": "string",
    "user_id": "string",
    "rating": "int",
    "text": "string",
    "created_at": "timestamp",
}
HEADER = ",".join(REVIEWS)


def _read_whole(path: Path, landing: Path, schema: dict, cap: int | None) -> tuple[object, object]:
    """`read_landing` of this file alone: (frame, report) or the error message."""
    name = str(path.relative_to(landing))
    try:
        return read_landing(landing, schema, include=lambda p: p == name, max_extra_columns=cap)
    except LandingFileError as err:
        return str(err), None


def _stream(
    path: Path, landing: Path, schema: dict, cap: int | None, chunk_rows: int, block_bytes: int | None
) -> tuple[LandingFileStream, list[pd.DataFrame], str | None]:
    more = {} if block_bytes is None else {"block_bytes": block_bytes}
    stream = iter_landing_file(path, landing, schema, max_extra_columns=cap, chunk_rows=chunk_rows, **more)
    chunks: list[pd.DataFrame] = []
    try:
        for chunk in stream:
            chunks.append(chunk)
    except LandingFileError as err:
        return stream, chunks, str(err)
    return stream, chunks, None


def _union(chunks: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """The chunks as a writer unions them: by column name, a column a chunk lacks being missing there."""
    filled = []
    for chunk in chunks:
        chunk = chunk.copy()
        for name in columns:
            if name not in chunk.columns:
                chunk[name] = pd.array([pd.NA] * len(chunk), dtype="string")
        filled.append(chunk[columns])
    return pd.concat(filled, ignore_index=True)


def assert_streams_like_read_landing(
    path: Path,
    landing: Path,
    schema: dict,
    *,
    cap: int | None = None,
    chunk_rows: int = 7,
    block_bytes: int | None = None,
) -> str:
    """Stream `path` and compare with `read_landing`: identical frame and report, or identical error.

    Returns "rows" or "error" (what the file gave), so a caller can check both kinds were covered.
    """
    expected, expected_report = _read_whole(path, landing, schema, cap)
    stream, chunks, error = _stream(path, landing, schema, cap, chunk_rows, block_bytes)
    context = f"{path.name} (block_bytes={block_bytes}): {path.read_bytes()[:400]!r}"
    if isinstance(expected, str):
        assert error is not None, f"read_landing failed ({expected}) but the stream did not: {context}"
        prefix = f"{path}: not a readable Parquet file: "
        if expected.startswith(prefix):  # pyarrow words its part differently for a file and a dataset
            assert error.startswith(prefix), (expected, error)
        else:
            assert error == expected, context
        assert not stream.complete
        return "error"
    assert error is None, f"the stream failed ({error}) but read_landing did not: {context}"
    assert stream.complete and stream.report == expected_report, (stream.report, expected_report)
    assert chunks, "a stream always yields at least one frame"
    assert all(len(chunk) <= chunk_rows for chunk in chunks)
    if len(expected) == 0:
        assert len(chunks) == 1
    else:
        assert all(len(chunk) for chunk in chunks)
    extras = list(stream.report.extra_columns)
    for chunk in chunks:  # each chunk: the schema, the extra columns kept so far, the lineage
        kept = [c for c in chunk.columns if c not in schema and c not in LINEAGE_COLUMNS]
        assert list(chunk.columns) == [*schema, *kept, *LINEAGE_COLUMNS] and kept == extras[: len(kept)]
    pd.testing.assert_frame_equal(
        _union(chunks, list(expected.columns)).reset_index(drop=True),
        expected.reset_index(drop=True),
        obj=context,
    )
    return "rows"


def _random_csv(rng: random.Random, utf8_errors: bool) -> bytes:
    atoms = [
        "x",
        "1",
        " 2 ",
        "4.0",
        "five",
        "",
        '"',
        '""',
        ",",
        "\n",
        "\r\n",
        "\r",
        " ",
        "é",
        "€",
        "\t",
        "😀",
    ]
    atoms += ["\ufeff"]  # a byte-order mark is one only at the start of the file
    atoms += ["2026-01-02T03:04:05Z", "2026-01-02 03:04:05+02:00", "2026-13-02T03:04:05Z", "2026-01-02"]
    columns = [c for c in SCHEMA if rng.random() < 0.95] + rng.sample(
        ["x1", "x2", "x3", "a "], rng.randint(0, 3)
    )
    rng.shuffle(columns)
    buffer = io.StringIO()
    writer = csv.writer(
        buffer,
        lineterminator=rng.choice(["\n", "\r\n"]),
        quoting=rng.choice([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    )
    writer.writerow(columns)
    for _ in range(rng.randint(0, 30)):
        writer.writerow(["".join(rng.choices(atoms, k=rng.randint(0, 3))) for _ in columns])
        if rng.random() < 0.03:
            buffer.write("\n")  # a blank line
    body = ("\ufeff" if rng.random() < 0.1 else "") + buffer.getvalue()
    if rng.random() < 0.25:  # break it somewhere
        cut = rng.randrange(len(body))
        body = body[:cut] + rng.choice(atoms) + body[cut:]
    data = body.encode()
    if utf8_errors and rng.random() < 0.3:
        cut = rng.randrange(len(data) + 1)
        data = data[:cut] + rng.choice([b"\xe9", b"\xff", b"\xc3"]) + data[cut:]
    return data


def _random_jsonl(rng: random.Random, utf8_errors: bool) -> bytes:
    values = [None, "x", " 2 ", "4.0", "five", "", 3, -7, 2.5, 4.0, True, [1], {"k": "v"}, "é\u2028x", "\x85"]
    values += ["2026-01-02T03:04:05Z", "2026-01-02 03:04:05+02:00", "2026-13-02T03:04:05Z", "2026-01-02"]
    keys = [*SCHEMA, "x1", "x2", "x3", "x4", "_source_file"]
    lines = []
    # Raw U+2028 or U+0085 in a string is valid JSON, but `read_landing` cuts lines there (`splitlines`).
    ascii_only = rng.random() < 0.85
    for _ in range(rng.randint(0, 30)):
        row = {key: rng.choice(values) for key in rng.sample(keys, rng.randint(2, len(keys)))}
        lines.append(json.dumps(row, ensure_ascii=ascii_only))
        if rng.random() < 0.05:
            # Blank to `str.splitlines`, which also cuts at form feeds and separators: lines count as it does.
            lines.append(rng.choice(["", "   ", "\x0c", "\x1e \x0c"]))
    if rng.random() < 0.2:  # break it somewhere
        lines.insert(rng.randint(0, len(lines)), rng.choice(["{", "[1, 2]", '"text"', '{"a": }', "nul"]))
    ending = rng.choice(["\n", "\r\n"])
    body = (
        ("\ufeff" if rng.random() < 0.1 else "") + ending.join(lines) + (ending if rng.random() < 0.8 else "")
    )
    data = body.encode()
    if utf8_errors and rng.random() < 0.3:
        cut = rng.randrange(len(data) + 1)
        data = data[:cut] + rng.choice([b"\xe9", b"\xff", b"\xc3"]) + data[cut:]
    return data


def _random_parquet(rng: random.Random, path: Path) -> None:
    rows = rng.randint(0, 30)

    def maybe_null(values: list) -> list:
        return [None if rng.random() < 0.2 else value for value in values]

    frame = pd.DataFrame(
        {
            "a": maybe_null([rng.choice(["x", "é", " y "]) for _ in range(rows)]),
            "n": maybe_null([rng.choice([1, 2, 3]) for _ in range(rows)])
            if rng.random() < 0.7
            else maybe_null([rng.choice(["1", "x", " 4 ", "2.5"]) for _ in range(rows)]),
            "t": pd.to_datetime(maybe_null(["2026-01-02T03:04:05Z"] * rows), utc=True)
            if rng.random() < 0.7
            else maybe_null([rng.choice(["2026-01-02", "not a date"]) for _ in range(rows)]),
            "f": maybe_null([rng.random() for _ in range(rows)]),
            "x1": maybe_null([rng.choice([1, 2]) for _ in range(rows)]),
            "x2": [[1, 2]] * rows if rng.random() < 0.3 else ["v"] * rows,
        }
    )
    frame = frame[[c for c in frame.columns if c != "t" or rng.random() < 0.95]]
    frame.to_parquet(path, row_group_size=rng.choice([3, 10, 1000]), index=False)
    if rng.random() < 0.2:  # a truncated or damaged file
        data = path.read_bytes()
        cut = rng.randrange(len(data))
        path.write_bytes(data[:cut] if rng.random() < 0.5 else data[:cut] + b"\0" * 8 + data[cut + 8 :])


def test_streaming_reads_what_read_landing_reads_random_files(tmp_path: Path) -> None:
    """Differential test: random CSV, JSON Lines and Parquet files, well-formed and broken, read in chunks of
    7 rows with blocks of a few bytes to the default: the same frame and report as `read_landing`, or the same
    error. UTF-8 errors only with one block per file: across blocks the first problem in file order is
    reported, where `read_landing` reports a UTF-8 error before anything else (documented)."""
    rng = random.Random(20260214)
    outcomes = {"rows": 0, "error": 0}
    for index in range(300):
        kind = ("csv", "jsonl", "parquet")[index % 3]
        path = tmp_path / f"f{index}.{kind}"
        block_bytes = rng.choice([1, 5, 17, 64, 300, None])
        utf8_errors = block_bytes is None
        if kind == "csv":
            path.write_bytes(_random_csv(rng, utf8_errors))
        elif kind == "jsonl":
            path.write_bytes(_random_jsonl(rng, utf8_errors))
        else:
            _random_parquet(rng, path)
        cap = rng.choice([None, 0, 1, 2])
        outcome = assert_streams_like_read_landing(
            path, tmp_path, SCHEMA, cap=cap, chunk_rows=7, block_bytes=block_bytes
        )
        outcomes[outcome] += 1
        path.unlink()
    # Both kinds were covered, many times.
    assert outcomes["rows"] > 100 and outcomes["error"] > 40, outcomes


def test_quoted_line_breaks_and_multibyte_text_across_block_boundaries(tmp_path: Path) -> None:
    """Quoted values with line breaks (LF and CRLF), multi-byte characters and quotes, read with blocks of
    many sizes (a few bytes: a cut after nearly every record; more: after every few): always exactly
    `read_landing`'s frame, with each record's first line."""
    rows = []
    for i in range(40):
        text = ["plain text", 'with "quotes", and a comma', "two\nlines", "crlf\r\nline", "é€😀 mixed", ""][
            i % 6
        ]
        rows.append([f"R{i}", "P1", "U1", str(i % 5 + 1) if i % 9 else "five", text, "2026-01-02T03:04:05Z"])
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([list(REVIEWS), *rows])
    path = tmp_path / "m.csv"
    path.write_bytes(buffer.getvalue().encode())
    frame, _ = read_landing(tmp_path, REVIEWS)
    assert frame["text"][2] == "two\nlines" and frame["_source_line"].tolist()[:5] == [2, 3, 4, 6, 8]
    for block_bytes in [1, 2, 3, 5, 7, 9, 11, 13, 17, 23, 31, 47, 64, 97, 150, 1000]:
        assert_streams_like_read_landing(path, tmp_path, REVIEWS, chunk_rows=7, block_bytes=block_bytes)


def test_a_stray_quote_costs_one_block_of_strict_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quote inside an unquoted value (an inch mark) upsets the quote parity that finds record ends: the
    strict reader reads from there and hands back to the Arrow path at the first record that ends a block,
    so the block never grows to the rest of the file and the rows after it are read fast."""
    from platform_assets.lib import landing

    texts = {3: 'a 15" screen'}
    rows = [f"R{i},P1,U1,4,{texts.get(i, f'text {i}')},2026-01-02" for i in range(2000)]
    path = tmp_path / "inch.csv"
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    fast_rows: list[int] = []
    read_with_arrow = landing._read_plain_csv_body_with_arrow

    def counting(header: list[str], body: bytes) -> object:
        table = read_with_arrow(header, body)
        fast_rows.append(0 if table is None else table.num_rows)
        return table

    monkeypatch.setattr(landing, "_read_plain_csv_body_with_arrow", counting)
    assert (
        assert_streams_like_read_landing(path, tmp_path, REVIEWS, chunk_rows=500, block_bytes=4096) == "rows"
    )
    # The first block (about 124 rows of 33 bytes), with the stray quote, was declined; all the others fast.
    assert fast_rows[0] == 0 and 0 not in fast_rows[1:] and sum(fast_rows) >= 2000 - 130, fast_rows


def test_a_utf8_error_after_a_block_boundary_names_its_line_and_byte_column(tmp_path: Path) -> None:
    """A multi-byte character near a block boundary is not an error (blocks end at line feeds); an invalid
    byte in a later block is named by the file's line and the byte column, as `read_landing` names it."""
    lines = [f"R{i},P1,U1,4,caf\u00e9 \u20ac{i},2026-01-02" for i in range(30)]
    good = (HEADER + "\n" + "\n".join(lines) + "\n").encode()
    (tmp_path / "good.csv").write_bytes(good)
    for block_bytes in (1, 2, 3, 7, 50):
        assert_streams_like_read_landing(tmp_path / "good.csv", tmp_path, REVIEWS, block_bytes=block_bytes)
    (tmp_path / "good.csv").unlink()
    bad = good.replace(b"R21,P1,U1,4,caf\xc3\xa9", b"R21,P1,U1,4,caf\xe9")
    (tmp_path / "bad.csv").write_bytes(bad)
    (tmp_path / "bad.jsonl").write_bytes(
        b"".join(b'{"review_id": "R%d", "text": "caf\xc3\xa9"}\n' % i for i in range(20))
        + b'{"text": "\xff"}\n'
    )
    for name, message in [
        ("bad.csv", "line 23, byte column 16: not valid UTF-8 (byte 0xe9)"),
        ("bad.jsonl", "line 21, byte column 11: not valid UTF-8 (byte 0xff)"),
    ]:
        for block_bytes in (1, 16, 64, None):
            _, chunks, error = _stream(tmp_path / name, tmp_path, REVIEWS, None, 5, block_bytes)
            assert error == f"{tmp_path / name}: {message}; re-encode the file as UTF-8"
        assert _read_whole(tmp_path / name, tmp_path, REVIEWS, None)[0] == error
    # A quote inside an unquoted value (legal, but not plain) sends the rest of the file to the strict reader,
    # which decodes block after block: the error still names the file's line.
    (tmp_path / "bad.csv").write_bytes(bad.replace(b"R3,P1,U1,4,caf", b'R3,P1,U1,4,c"af'))
    for block_bytes in (1, 16, 64, None):
        _, chunks, error = _stream(tmp_path / "bad.csv", tmp_path, REVIEWS, None, 5, block_bytes)
        assert error is not None and "line 23, byte column 16: not valid UTF-8" in error
        ids = [i for chunk in chunks for i in chunk["review_id"]]  # rows before the bad block, in order
        assert ids == [f"R{i}" for i in range(len(ids))] and len(ids) == (
            21 if block_bytes == 1 else len(ids)
        )
    assert _read_whole(tmp_path / "bad.csv", tmp_path, REVIEWS, None)[0] == error


def test_report_empty_and_refused_files_and_early_close(tmp_path: Path) -> None:
    import os

    row = "P1,U1,4,A perfectly fine review text,2026-01-01"
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "header.csv").write_text(HEADER + ",extra\n")
    (tmp_path / "rows.csv").write_text(f"{HEADER},x1\n" + "".join(f"R{i},{row},v\n" for i in range(10)))
    for name in ("empty.csv", "header.csv", "rows.csv"):
        assert_streams_like_read_landing(tmp_path / name, tmp_path, REVIEWS, chunk_rows=3)

    stream = iter_landing_file(tmp_path / "rows.csv", tmp_path, REVIEWS, chunk_rows=4)
    assert isinstance(stream, LandingFileStream) and not stream.complete
    assert [len(chunk) for chunk in stream] == [4, 4, 2]
    assert stream.complete and stream.report.rows_per_file == {"rows.csv": 10}
    assert stream.report.extra_columns == ["x1"]

    with iter_landing_file(tmp_path / "rows.csv", tmp_path, REVIEWS, chunk_rows=4) as early:
        first = next(early)
    assert len(first) == 4 and not early.complete
    with pytest.raises(StopIteration):
        next(early)

    # A file that is not read yields no rows, and the report says why (a partial one too, when named).
    elsewhere = tmp_path.parent / f"{tmp_path.name}_elsewhere.csv"
    elsewhere.write_text(f"{HEADER}\nS1,{row}\n")
    os.symlink(elsewhere, tmp_path / "outside.csv")
    (tmp_path / "late.csv.part").write_text(f"{HEADER}\nR1,{row}\n")
    for name, reason in [
        ("outside.csv", "symbolic link to a file outside the landing directory"),
        ("late.csv.part", "hidden or partial file (a transfer in progress)"),
    ]:
        stream = iter_landing_file(tmp_path / name, tmp_path, REVIEWS)
        (chunk,) = list(stream)
        assert len(chunk) == 0 and list(chunk.columns) == [*REVIEWS, *LINEAGE_COLUMNS]
        assert stream.complete and stream.report == LandingReport(
            ignored_files=[name], ignored_reasons={name: reason}
        )
    with pytest.raises(LandingFileError, match="no such landing file"):
        list(iter_landing_file(tmp_path / "gone.csv", tmp_path, REVIEWS))
    with pytest.raises(ValueError, match="not under the landing directory"):
        iter_landing_file(elsewhere, tmp_path, REVIEWS)


def test_columns_met_late_and_missing_columns(tmp_path: Path) -> None:
    """JSON Lines: a required column first seen in a later chunk is null before it; an extra column first
    seen later is kept while the cap allows. CSV: a missing required column is reported after the rest of
    the file was checked (a malformed line later wins, as in `read_landing`), and no rows are yielded."""
    base = {"product_id": "P1", "user_id": "U1", "rating": 4, "text": "fine", "created_at": "2026-01-01"}
    rows = [{"review_id": f"R{i}", **base} for i in range(6)]
    rows[0].pop("rating")
    for row in rows[:3]:
        row.pop("user_id")
    rows[4]["late"] = "yes"
    rows[5]["later"] = "no"
    path = tmp_path / "late.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert_streams_like_read_landing(path, tmp_path, REVIEWS, chunk_rows=2, cap=1)
    stream, chunks, _ = _stream(path, tmp_path, REVIEWS, 1, 2, None)
    assert "late" not in chunks[0].columns and chunks[2]["late"].tolist() == ["yes", pd.NA]
    assert stream.report.extra_columns == ["late"] and stream.report.dropped_columns == ["later"]
    assert chunks[0]["user_id"].isna().all() and chunks[2]["user_id"].tolist() == ["U1", "U1"]

    no_rating = tmp_path / "no_rating.jsonl"
    no_rating.write_text(json.dumps({"review_id": "R1", "text": "x"}) + "\n")
    assert assert_streams_like_read_landing(no_rating, tmp_path, REVIEWS) == "error"

    header = "review_id,product_id,user_id,text,created_at"
    short = tmp_path / "short.csv"
    short.write_text(header + "\n" + "R1,P1,U1,fine,2026-01-01\n" * 20)
    stream, chunks, error = _stream(short, tmp_path, REVIEWS, None, 5, 64)
    assert chunks == [] and error is not None and "missing required column(s) ['rating']" in error
    short.write_text(header + "\n" + "R1,P1,U1,fine,2026-01-01\n" * 20 + "R2,only,three\n")
    assert assert_streams_like_read_landing(short, tmp_path, REVIEWS, block_bytes=64) == "error"
    assert "line 22: expected 5 fields" in _stream(short, tmp_path, REVIEWS, None, 5, 64)[2]


_MEMORY_PROBE = """
import json, resource, sys
from pathlib import Path

from platform_assets.lib.landing import iter_landing_file, read_landing

mode, path = sys.argv[1], Path(sys.argv[2])
schema = json.loads(sys.argv[3])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if mode == "stream":
    rows = errors = 0
    for chunk in iter_landing_file(path, path.parent, schema, chunk_rows=50_000):
        rows += len(chunk)
        errors += int(chunk["_ingest_error"].notna().sum())
else:
    frame, _ = read_landing(path.parent, schema)
    rows, errors = len(frame), int(frame["_ingest_error"].notna().sum())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": rows, "errors": errors, "base_mib": base / 1024, "peak_mib": peak / 1024}))
"""


def _write_reviews_csv(path: Path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as file:
        file.write(HEADER + "\n")
        for start in range(0, rows, 100_000):
            file.write(
                "".join(
                    f"R{i},P{i % 977},U{i % 5003},{'five' if i % 10_007 == 0 else i % 5 + 1},"
                    f'"Review number {i}, caf\u00e9 and a fairly ordinary sentence about it",'
                    f"2026-01-02T03:04:{i % 60:02d}Z\n"
                    for i in range(start, min(start + 100_000, rows))
                )
            )


def _probe(mode: str, path: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, mode, str(path), json.dumps(REVIEWS)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_streaming_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    """Peak RSS of a child process streaming a 200K-row and a 1M-row CSV (chunks of 50K rows): the growth
    between the two stays small, where `read_landing` of the 1M file grows with it (reported, not asserted).
    """
    small, large = tmp_path / "s" / "reviews.csv", tmp_path / "l" / "reviews.csv"
    _write_reviews_csv(small, 200_000)
    _write_reviews_csv(large, 1_000_000)
    streamed_small, streamed_large = _probe("stream", small), _probe("stream", large)
    whole_large = _probe("whole", large)
    expected_errors = len(range(0, 1_000_000, 10_007))
    assert streamed_large["rows"] == whole_large["rows"] == 1_000_000
    assert streamed_large["errors"] == whole_large["errors"] == expected_errors
    growth = streamed_large["peak_mib"] - streamed_small["peak_mib"]
    whole_growth = whole_large["peak_mib"] - streamed_small["peak_mib"]
    print(
        f"\nstream 200K: {streamed_small['peak_mib']:.0f} MiB peak, stream 1M: {streamed_large['peak_mib']:.0f} "
        f"MiB (growth {growth:.0f} MiB); read_landing 1M: {whole_large['peak_mib']:.0f} MiB "
        f"({whole_growth:.0f} MiB over the 200K stream); file {large.stat().st_size / 2**20:.0f} MiB"
    )
    assert growth < 150, f"streaming peak RSS grew {growth:.0f} MiB from 200K to 1M rows"
