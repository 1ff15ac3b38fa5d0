"""Reading landing files: formats, type enforcement, and clear errors that name the file and line."""

from pathlib import Path

import pandas as pd
import pytest

from platform_assets.defs.reviews.assets import REVIEW_SCHEMA
from platform_assets.lib.landing import LandingFileError, read_landing

HEADER = "review_id,product_id,user_id,rating,text,created_at"


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_reads_csv_jsonl_and_parquet_with_types_and_extra_columns(tmp_path: Path) -> None:
    write(
        tmp_path / "a.csv",
        f"{HEADER},channel\nR1,P1,U1,5,Great battery life overall,2026-01-02T03:04:05Z,web\n",
    )
    write(
        tmp_path / "b.jsonl",
        '{"review_id": "R2", "product_id": "P1", "user_id": "U2", "rating": 4, "text": "Nice screen indeed",'
        ' "created_at": "2026-01-03T00:00:00Z", "lang": "en"}\n',
    )
    pd.DataFrame(
        {
            "review_id": ["R3"],
            "product_id": ["P2"],
            "user_id": ["U3"],
            "rating": [2],
            "text": ["Sound is tinny and weak"],
            "created_at": pd.to_datetime(["2026-01-04"], utc=True),
        }
    ).to_parquet(tmp_path / "c.parquet")
    frame, report = read_landing(tmp_path, REVIEW_SCHEMA)

    assert frame["review_id"].tolist() == ["R1", "R2", "R3"]
    assert str(frame["rating"].dtype) == "Int64"
    assert str(frame["created_at"].dtype) == "datetime64[ns, UTC]"
    assert frame["created_at"].iloc[0] == pd.Timestamp("2026-01-02T03:04:05Z")
    assert frame["channel"].tolist()[0] == "web" and pd.isna(frame["channel"].iloc[1])
    assert frame["lang"].tolist()[1] == "en"
    assert frame["_source_file"].tolist() == ["a.csv", "b.jsonl", "c.parquet"]
    assert frame["_source_line"].tolist() == [2, 1, 1]
    assert frame["_ingest_error"].isna().all()
    assert report.rows_per_file == {"a.csv": 1, "b.jsonl": 1, "c.parquet": 1}


def test_value_of_wrong_type_keeps_the_row_and_records_column_value_and_line(tmp_path: Path) -> None:
    write(
        tmp_path / "r.csv",
        f"{HEADER}\nR1,P1,U1,five,Fine product overall,2026-01-01T00:00:00Z\n"
        "R2,P1,U1,4.5,Fine product overall,not-a-date\nR3,P1,U1,3,Fine product overall,2026-01-01\n",
    )
    frame, report = read_landing(tmp_path, REVIEW_SCHEMA)
    assert len(frame) == 3 and report.rows_with_type_errors == 2
    assert frame["_ingest_error"][0] == "rating: 'five' is not an integer (r.csv line 2)"
    assert "rating: '4.5' is not an integer" in frame["_ingest_error"][1]
    assert "created_at: 'not-a-date' is not an ISO-8601 timestamp" in frame["_ingest_error"][1]
    assert "(r.csv line 3)" in frame["_ingest_error"][1]
    assert pd.isna(frame["rating"][0]) and frame["rating"][2] == 3


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "cols.csv",
            f"{HEADER}\nR1,P1,U1,5,ok text here,2026-01-01\nR2,P1,U1,5,a,b,2026-01-01\n",
            "line 3: expected 6 fields",
        ),
        ("quote.csv", f'{HEADER}\nR1,P1,U1,5,"unterminated text,2026-01-01\n', "line 2: malformed CSV"),
        ("bad.jsonl", '{"review_id": "R1"}\n{"review_id": \n', "line 2, column"),
        ("list.jsonl", "[1, 2]\n", "line 1: expected a JSON object"),
        (
            "latin1.csv",
            (HEADER + "\nR1,P1,U1,5,caf\xe9 au lait,2026-01-01\n").encode("latin-1"),
            "line 2, byte column 15: not valid UTF-8",
        ),
        (
            "missing.csv",
            "review_id,product_id,user_id,rating,created_at\nR1,P1,U1,5,2026-01-01\n",
            "missing required column(s) ['text']",
        ),
        ("broken.parquet", b"PAR1 this is not parquet", "not a readable Parquet file"),
    ],
)
def test_unparseable_file_fails_naming_file_and_line(
    tmp_path: Path, name: str, content: str | bytes, expected: str
) -> None:
    write(tmp_path / name, content)
    with pytest.raises(LandingFileError) as raised:
        read_landing(tmp_path, REVIEW_SCHEMA)
    assert str(tmp_path / name) in str(raised.value)
    assert expected in str(raised.value)


def test_empty_and_header_only_files_yield_no_rows_and_are_reported(tmp_path: Path) -> None:
    write(tmp_path / "empty.csv", "")
    write(tmp_path / "header.csv", HEADER + "\n")
    write(tmp_path / "notes.txt", "not data")
    write(tmp_path / ".partial.csv.tmp", "junk")
    frame, report = read_landing(tmp_path, REVIEW_SCHEMA)
    assert len(frame) == 0
    assert list(frame.columns[:6]) == list(REVIEW_SCHEMA)
    assert report.empty_files == ["empty.csv"]
    assert report.ignored_files == ["notes.txt"]
    assert report.files == ["empty.csv", "header.csv"]


def test_quoted_multiline_text_keeps_the_line_where_the_record_starts(tmp_path: Path) -> None:
    write(
        tmp_path / "m.csv",
        f'{HEADER}\nR1,P1,U1,5,"first line\nsecond line",2026-01-01\nR2,P1,U1,oops,another one here,2026-01-01\n',
    )
    frame, _ = read_landing(tmp_path, REVIEW_SCHEMA)
    assert frame["text"][0] == "first line\nsecond line"
    assert frame["_source_line"].tolist() == [2, 4]
    assert "(m.csv line 4)" in frame["_ingest_error"][1]


def _strict_read(path: Path, schema: dict) -> pd.DataFrame:
    """The strict, line-by-line reader alone: what the Arrow fast path must reproduce exactly."""
    from platform_assets.lib.landing import _read_csv, _type_frame

    frame = _read_csv(path, path.read_bytes().decode("utf-8"))
    frame["_source_file"] = path.name
    return _type_frame(frame, schema, path.name)


def _strict_rows(path: Path) -> pd.DataFrame:
    from platform_assets.lib.landing import _read_csv

    return _read_csv(path, path.read_bytes().decode("utf-8"))


def test_arrow_fast_path_reads_exactly_what_the_strict_reader_reads(tmp_path: Path) -> None:
    """Differential test: random CSVs, well-formed and broken; the fast path either declines the file or
    gives the strict reader's frame (values, types, errors, line numbers). A file the strict reader rejects
    is never accepted."""
    import csv
    import io
    import random

    from platform_assets.lib.landing import _read_plain_csv_with_arrow, _type_table

    schema = {"a": "string", "n": "int", "t": "timestamp"}
    atoms = ["x", "1", " 2 ", "4.0", "five", "", '"', '""', ",", "\n", "\r\n", "\r", " ", "é", "\t"]
    atoms += ["2026-01-02T03:04:05Z", "2026-01-02 03:04:05+02:00", "2026-13-02T03:04:05Z", "2026-01-02"]
    rng = random.Random(20261123)
    taken = 0
    path = tmp_path / "f.csv"
    for _ in range(800):
        if rng.random() < 0.7:
            buffer = io.StringIO()
            writer = csv.writer(
                buffer,
                lineterminator=rng.choice(["\n", "\r\n"]),
                quoting=rng.choice([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
            )
            writer.writerow(["a", "n", "t"])
            for _ in range(rng.randint(0, 6)):
                writer.writerow(["".join(rng.choices(atoms, k=rng.randint(0, 3))) for _ in range(3)])
            body = buffer.getvalue()
            if rng.random() < 0.3:  # break it somewhere
                cut = rng.randrange(len(body))
                body = body[:cut] + rng.choice(atoms) + body[cut:]
        else:
            body = "a,n,t\n" + "".join(rng.choices(atoms, k=rng.randint(1, 25)))
        path.write_bytes(body.encode())
        fast = _read_plain_csv_with_arrow(body.encode())
        if fast is None:
            continue
        try:
            strict = _strict_rows(path)
        except LandingFileError:
            pytest.fail(f"the fast path accepted a file the strict reader rejects: {body!r}")
        taken += 1
        if fast.num_rows == 0:
            assert strict.empty
            continue
        assert fast.column_names == list(strict.columns), repr(body)
        if not set(schema) <= set(strict.columns):  # a broken header: both fail on the missing column
            continue
        pd.testing.assert_frame_equal(
            _type_table(fast, schema, path.name).reset_index(drop=True),
            _strict_read(path, schema).reset_index(drop=True),
            check_dtype=False,
            obj=repr(body),
        )
    assert taken > 150  # the comparison covered many files, not just the declined ones


@pytest.mark.parametrize(
    "body",
    [
        'a,n,t\n"abc"def,1,2026-01-02T03:04:05Z\n',  # junk after a closing quote
        'a,n,t\nx,1,"2026-01-02T03:04:05Z\n',  # a quote left open at the end
        "a,n,t\nx,1,2026-01-02T03:04:05Z\n\ny,2,2026-01-02T03:04:05Z\n",  # a blank line
        "a,n,t\rx,1,2026-01-02T03:04:05Z\r",  # old Mac line ends
    ],
)
def test_arrow_fast_path_declines_what_only_the_strict_reader_judges(body: str) -> None:
    from platform_assets.lib.landing import _read_plain_csv_with_arrow

    assert _read_plain_csv_with_arrow(body.encode()) is None


def test_large_plain_csv_keeps_types_errors_and_lines(tmp_path: Path) -> None:
    """A file big enough for Arrow to split into blocks: every row keeps its line and its typing errors."""
    rows = [
        f"R{i},P1,U1,{'five' if i % 997 == 0 else i % 5 + 1},text number {i},2026-01-02T03:04:05Z"
        for i in range(60_000)
    ]
    write(tmp_path / "big.csv", HEADER + "\n" + "\n".join(rows) + "\n")
    frame, report = read_landing(tmp_path, REVIEW_SCHEMA)
    assert len(frame) == 60_000 and report.rows_with_type_errors == len(range(0, 60_000, 997))
    assert frame["_source_line"].tolist() == list(range(2, 60_002))
    bad = frame.loc[frame["_ingest_error"].notna()].iloc[1]
    assert bad["review_id"] == "R997" and pd.isna(bad["rating"])
    assert bad["_ingest_error"] == "rating: 'five' is not an integer (big.csv line 999)"
    assert frame["rating"].dtype == "Int64" and str(frame["created_at"].dtype) == "datetime64[ns, UTC]"


def test_files_that_cannot_be_read_safely_are_listed_with_the_reason(tmp_path: Path) -> None:
    """A name that is not UTF-8 used to fail every run downstream (UnicodeEncodeError naming no file); a link
    to a file elsewhere on the host was read; a linked directory vanished without a word."""
    import os

    from platform_assets.lib.landing import landing_fingerprint, list_landing_files

    landing, elsewhere = tmp_path / "landing", tmp_path / "elsewhere"
    row = "P1,U1,4,A perfectly fine review text,2026-01-01\n"
    write(landing / "good.csv", f"{HEADER}\nR1,{row}")
    write(landing / "sub" / "inner.csv", f"{HEADER}\nR2,{row}")
    (landing / "caf\udce9.csv").write_bytes(f"{HEADER}\nR3,{row}".encode())  # the bytes caf\xe9.csv
    write(elsewhere / "secret.csv", f"{HEADER}\nS1,{row}")
    os.symlink(elsewhere / "secret.csv", landing / "outside.csv")
    os.symlink(elsewhere, landing / "linked_dir")
    os.symlink(landing / "sub" / "inner.csv", landing / "inside.csv")
    os.symlink(tmp_path / "missing.csv", landing / "broken.csv")
    os.mkfifo(landing / "pipe.csv")  # reading it would block the run for ever
    write(landing / "notes.txt", "not data")

    frame, report = read_landing(landing, REVIEW_SCHEMA)
    assert sorted(frame["review_id"]) == ["R1", "R2", "R2"]  # the inside link reads its target
    assert report.files == ["good.csv", "inside.csv", "sub/inner.csv"]
    assert report.ignored_reasons == {
        "broken.csv": "broken symbolic link",
        "caf\\xe9.csv": "file name is not valid UTF-8; rename the file",
        "linked_dir": "symbolic link to a directory; links are not followed, deliver the files themselves",
        "notes.txt": "not a CSV, JSON Lines or Parquet file (by its suffix)",
        "outside.csv": "symbolic link to a file outside the landing directory",
        "pipe.csv": "not a regular file (a pipe, socket or device)",
    }
    assert report.ignored_files == list(report.ignored_reasons)
    # Every name in the report can be stored as UTF-8 (Parquet, Dagster metadata).
    "".join([*report.files, *report.ignored_files]).encode("utf-8")
    readable, ignored = list_landing_files(landing)
    assert [p.name for p in readable] == ["good.csv", "inside.csv", "inner.csv"] and len(ignored) == 6
    assert landing_fingerprint(landing)


def test_a_landing_directory_reached_through_a_link_reads_its_files(tmp_path: Path) -> None:
    import os

    write(tmp_path / "real" / "a.csv", f"{HEADER}\nR1,P1,U1,4,A perfectly fine review text,2026-01-01\n")
    os.symlink(tmp_path / "real", tmp_path / "landing")
    os.symlink(tmp_path / "real" / "a.csv", tmp_path / "real" / "b.csv")
    frame, report = read_landing(tmp_path / "landing", REVIEW_SCHEMA)
    assert report.files == ["a.csv", "b.csv"] and report.ignored_files == []


def test_a_csv_field_over_the_former_parser_limit_reads_as_in_json_lines(tmp_path: Path) -> None:
    """Python's csv module refused fields over the limit set here (64 MiB), failing the whole delivery with an
    unbalanced-quote hint; JSON Lines read the same text. Both now read it, and cleaning judges its length."""
    import json

    from platform_assets.defs.reviews.cleaning import clean_reviews

    huge = "word " * (64 * 1024 * 1024 // 5) + "end of a very long review"
    row = {"product_id": "P1", "user_id": "U1", "rating": 4, "text": huge, "created_at": "2026-01-01"}
    write(
        tmp_path / "a.csv",
        f'{HEADER}\nC1,P1,U1,4,"{huge}",2026-01-01\nC2,P1,U1,4,a fine text here,2026-01-01\n',
    )
    write(tmp_path / "b.jsonl", json.dumps({"review_id": "J1", **row}) + "\n")
    frame, report = read_landing(tmp_path, REVIEW_SCHEMA)
    assert report.rows_per_file == {"a.csv": 2, "b.jsonl": 1}
    assert frame["text"][0] == frame["text"][2] == huge
    quarantine = clean_reviews(frame).quarantine.set_index("review_id")
    assert quarantine["reject_reason"].to_dict() == {"C1": "text_too_long", "J1": "text_too_long"}
    assert quarantine.loc["C1", "reject_detail"] == quarantine.loc["J1", "reject_detail"]
    assert quarantine.loc["C1", "reject_detail"].startswith(f"text has {len(huge)} characters after cleaning")


def test_nested_values_in_a_string_column_are_type_errors(tmp_path: Path) -> None:
    """A JSON object or array (or a Parquet struct) in `text` used to become its str() and be embedded."""
    import json

    base = {"product_id": "P1", "user_id": "U1", "rating": 4, "created_at": "2026-01-01"}
    rows = [
        {"review_id": "R1", **base, "text": {"a": 1}},
        {"review_id": "R2", **base, "text": ["a", "list"]},
        {"review_id": 3, **base, "text": "A plain text with a numeric id"},
    ]
    write(tmp_path / "a.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    pd.DataFrame([{"review_id": "R4", **base, "text": {"b": 2}}]).to_parquet(tmp_path / "b.parquet")
    frame, report = read_landing(tmp_path, REVIEW_SCHEMA)
    assert frame["_ingest_error"].tolist()[:2] == [
        "text: {'a': 1} is not a string (a.jsonl line 1)",
        "text: ['a', 'list'] is not a string (a.jsonl line 2)",
    ]
    assert frame["_ingest_error"][3] == "text: {'b': 2} is not a string (b.parquet line 1)"
    assert frame["text"].isna().tolist() == [True, True, False, True]
    # A number where a string is expected is still its text, as before.
    assert frame["review_id"][2] == "3" and pd.isna(frame["_ingest_error"][2])
    assert report.rows_with_type_errors == 3


def test_extra_columns_beyond_the_cap_are_dropped_and_listed(tmp_path: Path) -> None:
    row = "P1,U1,4,A perfectly fine review text,2026-01-01"
    write(tmp_path / "a.csv", f"{HEADER},x1,x2\nR1,{row},a,b\n")
    write(tmp_path / "b.csv", f"{HEADER},x3,x1\nR2,{row},c,d\n")
    write(tmp_path / "c.csv", f"{HEADER},h1\n")  # no rows: its columns count for nothing
    wide = [f"w{i}" for i in range(10_000)]
    write(tmp_path / "d.csv", ",".join([HEADER, *wide]) + f"\nR3,{row}," + ",".join(wide) + "\n")

    frame, report = read_landing(tmp_path, REVIEW_SCHEMA, max_extra_columns=3)
    assert report.max_extra_columns == 3
    assert report.extra_columns == ["x1", "x2", "x3"]
    assert report.dropped_columns == wide
    assert list(frame.columns) == [
        *REVIEW_SCHEMA,
        "x1",
        "x2",
        "x3",
        "_source_file",
        "_source_line",
        "_ingest_error",
    ]
    assert frame["x1"].tolist()[:2] == ["a", "d"] and pd.isna(frame["x1"][2]) and frame["x3"][1] == "c"

    _, none_kept = read_landing(tmp_path, REVIEW_SCHEMA, max_extra_columns=0)
    assert none_kept.extra_columns == [] and none_kept.dropped_columns == ["x1", "x2", "x3", *wide]
    (tmp_path / "d.csv").unlink()
    uncapped, report = read_landing(tmp_path, REVIEW_SCHEMA)  # no cap: every extra column
    assert report.extra_columns == ["x1", "x2", "x3"] and report.dropped_columns == []
    assert report.max_extra_columns is None and uncapped["x2"][0] == "b"


def test_a_directory_that_cannot_be_listed_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    write(tmp_path / "a.csv", f"{HEADER}\nR1,P1,U1,4,A perfectly fine review text,2026-01-01\n")
    write(tmp_path / "locked" / "b.csv", "never read")
    scandir = os.scandir

    def refuse_locked(path: object) -> object:  # root bypasses permissions: refuse as a non-root user would
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse_locked)
    frame, report = read_landing(tmp_path, REVIEW_SCHEMA)
    assert report.files == ["a.csv"] and len(frame) == 1
    assert report.ignored_reasons == {"locked": "directory that cannot be listed (permissions)"}
