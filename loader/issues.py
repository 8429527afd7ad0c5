"""Per-row problems as data.

An `Issue` has a stable kebab-case `code` (the frictionless codes for structure:
`blank-label`, `duplicate-label`, `missing-cell`, `extra-cell`, `blank-row`; plus
`encoding-error`, `missing-column`, `cell-error`, and the mapping and schema codes),
and the position a spreadsheet user sees: sheet, row (header row counts, so the first
data row of a file with its header on row 1 is row 2), column name and number, cell.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]


def column_letter(number: int) -> str:
    """1 -> 'A', 27 -> 'AA': the column letters a spreadsheet shows."""
    if number < 1:
        raise ValueError(f"column numbers start at 1, not {number}")
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


@dataclass(frozen=True, slots=True)
class Issue:
    code: str
    message: str
    row: int | None = None
    sheet: str | None = None
    column: str | None = None  # the header label
    column_number: int | None = None  # 1-based
    field: str | None = None  # payload field, e.g. "Customer.Email"
    value: str | None = None  # the offending source value, as text
    step: str | None = None  # spec step id
    severity: Severity = "error"

    @property
    def cell(self) -> str | None:
        """'F27', or None when the issue has no single cell."""
        if self.row is None or self.column_number is None:
            return None
        return f"{column_letter(self.column_number)}{self.row}"

    @property
    def where(self) -> str:
        """Where a user looks: 'Complaints!F27', 'row 27', 'column F', or ''."""
        prefix = f"{self.sheet}!" if self.sheet else ""
        if self.cell:
            return prefix + self.cell
        if self.row is not None:
            return f"{self.sheet} row {self.row}" if self.sheet else f"row {self.row}"
        if self.column_number is not None:
            return f"{prefix}column {column_letter(self.column_number)}"
        return self.sheet or ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cell"] = self.cell
        return data
