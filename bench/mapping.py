"""Mapper throughput: rows/s and peak memory for a 15-field createcase spec with two date
fields, on generated CSV-like rows (all text, as a CSV source gives them). One core.

    .venv/bin/python bench/mapping.py [ROWS]
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from loader.mapping import Mapper
from loader.sources import Row
from loader.spec import load_spec

SPEC = """\
spec: 1
name: bench-complaints
source: {file: complaints.csv, key: LegacyRef}
steps:
  - id: case
    operation: createcase
    fields:
      Type: {value: Complaint}
      ExternalId: {from: LegacyRef, transform: [strip, upper], required: true}
      RequestDate:
        {from: Received, date: ["%d/%m/%Y %H:%M", "%d/%m/%Y"], format: "%Y-%m-%dT%H:%M:%S"}
      DueDate: {from: Due, date: "%Y-%m-%d", format: "%d/%m/%Y"}
      RequestMethod: {from: Channel, map: {TEL: Phone, EML: Email, WEB: Web}, default: Phone}
      Customer.Title: {from: Title, transform: [strip, title]}
      Customer.FirstName: {from: FirstName, transform: [strip]}
      Customer.Surname: {from: Surname, required: true, pii: true}
      Customer.Email: {from: Email, transform: [strip, lower], pii: true}
      Customer.Phone: {from: Phone, transform: [digits]}
      Customer.Postcode: {from: Postcode, transform: [strip, upper]}
      Customer.Address: {from: Address, transform: [collapse_spaces]}
      Label: {template: "{Category} - {Surname}", transform: [{truncate: 100}]}
      Details: {template: "{Summary}\\n\\nLegacy reference: {LegacyRef}"}
      Category: {from: Category, when: {column: Category, not_empty: true}}
"""
HEADER = ["LegacyRef", "Received", "Due", "Channel", "Title", "FirstName", "Surname", "Email",
          "Phone", "Postcode", "Address", "Category", "Summary"]  # fmt: skip


def rows(count: int) -> list[Row]:
    rnd = random.Random(7)
    out = []
    for n in range(count):
        day, month, year = rnd.randint(1, 28), rnd.randint(1, 12), rnd.randint(2010, 2024)
        received = f"{day:02d}/{month:02d}/{year}" + (" 10:15" if n % 3 else "")
        values = [
            f"lc-{n:07d}", received, f"{year}-{month:02d}-{day:02d}",
            rnd.choice(["TEL", "EML", "WEB", ""]), rnd.choice(["mr", "mrs", "ms"]),
            f" First{n % 500} ", f"Surname{n % 2000}", f" Person{n}@Example.org ",
            f"0161 {n % 1000:03d} {n % 10000:04d}", f"m{n % 60} {n % 9}ab",
            f"{n}  High   Street", rnd.choice(["Housing", "Waste", ""]),
            f"Complaint number {n} about things",
        ]  # fmt: skip
        out.append(Row(n + 2, values))
    return out


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(SPEC, encoding="utf-8")
        spec = load_spec(path)
    data = rows(count)
    mapper = Mapper(spec, HEADER)
    # Wall-clock and CPU rates: on a shared machine the CPU rate is the steadier figure.
    best, best_cpu, issues = 0.0, 0.0, 0
    for _ in range(3):
        start, start_cpu = time.perf_counter(), time.process_time()
        issues = sum(len(mapper.map_row(row).issues) for row in data)
        best = max(best, count / (time.perf_counter() - start))
        best_cpu = max(best_cpu, count / (time.process_time() - start_cpu))
    # Memory in a separate pass: tracemalloc slows Python down several times over.
    tracemalloc.start()
    for row in data[:50_000]:
        mapper.map_row(row)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"mapper: {count:,} rows x 15 fields (2 dates): {best:,.0f} rows/s "
          f"({best_cpu:,.0f} rows per CPU second; best of 3), "
          f"{issues} issues; peak memory allocated while mapping {peak / 1e6:.1f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
