"""Benchmark the source readers: rows/s and peak memory for CSV and xlsx.

    .venv/bin/python bench/read_sources.py [--rows-xlsx 50000] [--rows-csv 200000]

Generates the files in a temporary directory (an xlsx of 15 columns with a date column, a
zero-padded phone column, text and numbers; a CSV), then times each reader. Peak memory
comes from a second pass under tracemalloc (which slows the pass, so it is not timed), at
half the rows and at all rows: equal peaks mean memory is flat in the number of rows.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

import openpyxl
from openpyxl.cell import WriteOnlyCell

from loader.sources import open_table


def make_xlsx(path: Path, rows: int) -> None:
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Cases")
    ws.append([f"col{k}" for k in range(1, 16)])
    start = datetime(2010, 1, 1, 9, 30)
    for n in range(rows):
        date_cell = WriteOnlyCell(ws, start + timedelta(hours=n))
        date_cell.number_format = "dd/mm/yyyy hh:mm"
        phone = WriteOnlyCell(ws, 7700900000 + n)
        phone.number_format = "00000000000"
        ws.append(
            [
                f"REF-{n:07d}", date_cell, phone, f"Surname {n % 977}", f"First {n % 313}",
                n, n * 1.25, "Complaint" if n % 3 else "FOI", f"person{n}@example.org",
                n % 2 == 0, 1000.5 + n, f"Street {n % 101}", "AB1 2CD", n * 7, "note",
            ]
        )  # fmt: skip
    wb.save(path)


def make_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow([f"col{k}" for k in range(1, 11)])
        for n in range(rows):
            writer.writerow(
                [f"REF-{n:07d}", "12/03/2019 10:00", "07700900123", f"Surname {n}", "Jo",
                 n, "Complaint", f"p{n}@example.org",
                 "Line one\nline two" if n % 50 == 0 else "", "x"]
            )  # fmt: skip


def ours(path: Path) -> Callable[[], Iterable[object]]:
    def rows() -> Iterable[object]:
        with open_table(path) as table:
            yield from table

    return rows


def plain_csv(path: Path) -> Callable[[], Iterable[object]]:
    def rows() -> Iterable[object]:
        with path.open(newline="", encoding="utf-8") as stream:
            yield from csv.reader(stream)

    return rows


def openpyxl_ro(path: Path) -> Callable[[], Iterable[object]]:
    def rows() -> Iterable[object]:
        wb = openpyxl.load_workbook(path, read_only=True)
        try:
            yield from wb.active.iter_rows(values_only=True)
        finally:
            wb.close()

    return rows


def measure(name: str, reader: Callable[[], Iterable[object]], total: int) -> None:
    began, cpu = time.perf_counter(), time.process_time()
    count = sum(1 for _ in reader())
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    peaks = []
    for limit in (total // 2, total):
        tracemalloc.start()
        for _ in itertools.islice(reader(), limit):
            pass
        peaks.append(tracemalloc.get_traced_memory()[1] / 1e6)
        tracemalloc.stop()
    print(
        f"{name:28} {count:>8} rows {seconds:7.2f} s {count / seconds:>10,.0f} rows/s "
        f"{count / cpu:>10,.0f} rows/CPU-s   "
        f"peak {peaks[0]:6.1f} MB at {total // 2} rows, {peaks[1]:6.1f} MB at {total}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-xlsx", type=int, default=50_000)
    parser.add_argument("--rows-csv", type=int, default=200_000)
    parser.add_argument("--skip-openpyxl", action="store_true")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} (the machine is shared: compare CPU rates)")
    with tempfile.TemporaryDirectory() as tmp:
        xlsx_path, csv_path = Path(tmp) / "bench.xlsx", Path(tmp) / "bench.csv"
        make_csv(csv_path, args.rows_csv)
        make_xlsx(xlsx_path, args.rows_xlsx)
        measure("csv.reader (baseline)", plain_csv(csv_path), args.rows_csv)
        measure("loader csv", ours(csv_path), args.rows_csv)
        measure("loader xlsx", ours(xlsx_path), args.rows_xlsx)
        if not args.skip_openpyxl:
            measure("openpyxl read-only (baseline)", openpyxl_ro(xlsx_path), args.rows_xlsx)


if __name__ == "__main__":
    main()
