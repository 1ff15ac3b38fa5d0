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
