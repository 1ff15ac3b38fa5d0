"""Optional CSV → Parquet conversion of landed files (a profile's `parquet_target`).

Every column is kept as a string, exactly as delivered (an id such as "007" must not become the number 7);
typing is the raw layer's job. An empty field becomes null, as the landing reader treats it. The Parquet file is
written under a dotted temporary name and renamed into place, and it takes the CSV's modification time, which
is how an unchanged CSV is recognised and not converted again.
"""

from __future__ import annotations

import contextlib
import csv
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ConversionReport:
    """Which CSVs were converted, which were already up to date, and which failed (with the reason)."""

    converted: list[str] = field(default_factory=list)
    up_to_date: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def parquet_path_for(relative_csv: str, parquet_root: Path) -> Path:
    """`a/b.csv` → `<parquet_root>/a/b.parquet`."""
    return parquet_root / Path(relative_csv).with_suffix(".parquet")


def convert_csv(source: Path, destination: Path) -> None:
    """Convert one CSV file to Parquet, all columns as strings, atomically."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    with open(source, newline="", encoding="utf-8-sig") as handle:
        header_line = handle.readline()
    header = next(csv.reader([header_line]), [])
    table = pacsv.read_csv(
        source,
        read_options=pacsv.ReadOptions(encoding="utf8"),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=True,
            null_values=[""],
        ),
    )
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.converting")
    try:
        pq.write_table(table, temporary)
        info = source.stat()
        os.utime(temporary, ns=(info.st_atime_ns, info.st_mtime_ns))
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def convert_landed(relative_paths: list[str], landing_root: Path, parquet_root: Path) -> ConversionReport:
    """Convert the listed CSVs (relative to `landing_root`) whose Parquet copy is missing or out of date."""
    report = ConversionReport()
    for relative in relative_paths:
        if not relative.lower().endswith(".csv"):
            continue
        source = landing_root / relative
        if not source.is_file():
            continue
        destination = parquet_path_for(relative, parquet_root)
        with contextlib.suppress(FileNotFoundError):
            if destination.stat().st_mtime_ns == source.stat().st_mtime_ns:
                report.up_to_date += 1
                continue
        try:
            convert_csv(source, destination)
        except Exception as err:  # pyarrow raises several types for malformed CSV
            report.failed[relative] = str(err).splitlines()[0] if str(err) else type(err).__name__
            continue
        report.converted.append(relative)
    return report
