"""Stream rows from CSV/TSV/XLSX files with the position a spreadsheet user sees."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal

from loader.issues import Issue

CellValue = str | int | float | Decimal | bool | datetime | date | time | None


@dataclass(slots=True)
class Row:
    """One data row. `number` counts as a spreadsheet does: the header row counts, so with
    the header on row 1 the first data row is row 2. `values` has one entry per header
    column (None where the row is short); cells beyond the header are in `extra`."""

    number: int
    values: list[CellValue]
    issues: list[Issue] = field(default_factory=list)
    extra: list[CellValue] = field(default_factory=list)
    offset: int | None = None  # byte offset of the record in a CSV file, for resume
    blank: bool = False
