"""What `loader validate` writes, and the table files the executor writes.

- `report.json`: `{"summary": {...}, "issues": [Issue.to_dict(), ...]}` (DESIGN §9),
  streamed, so a 200,000-issue report never sits in memory as one string;
- `report.html`: one self-contained page for a data owner: no network, no external
  fonts or scripts, everything HTML-escaped, the issue list capped;
- `TableWriter`: rejects.csv / rejects.xlsx / failures.csv, streamed, formula-safe.

PII: the caller says which issues concern a `pii` field. Their values are masked in
both reports, and so is any quoted text in their messages (validation messages quote
the offending value), so that the clear value appears nowhere in either file. The
rejects file is different on purpose: it gives the data owner their own rows back to fix.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from loader.errors import LoaderError
from loader.issues import Issue, column_letter

__all__ = [
    "CODE_DESCRIPTIONS",
    "Summary",
    "TableWriter",
    "formula_safe",
    "mask",
    "write_report_html",
    "write_report_json",
]

HTML_ROW_CAP = 10_000


@dataclass(frozen=True, slots=True)
class Summary:
    rows: int
    valid: int
    invalid: int
    issues: int  # every issue, errors and warnings
    warnings: int
    source: str
    sheet: str | None
    spec: str
    stopped_early: bool = False  # --max-errors stopped the check: later rows unchecked

    def __post_init__(self) -> None:
        if min(self.rows, self.valid, self.invalid, self.issues, self.warnings) < 0:
            raise ValueError("summary counts cannot be negative")
        if self.valid + self.invalid > self.rows:
            raise ValueError(
                f"valid + invalid ({self.valid} + {self.invalid}) > rows ({self.rows})"
            )


# --- value hygiene -------------------------------------------------------------------


def mask(value: str | None) -> str | None:
    """A pii value as reports show it: '•••• (5 chars)'.

    Nothing of the value is kept (no first letter, no domain, no shape), only its
    length, which tells a data owner whether the cell was blank, short or overlong
    without telling them anything about the person. None and '' stay as they are:
    an absent value discloses nothing.
    """
    if not value:
        return value
    size = len(value)
    return f"•••• ({size} char{'' if size == 1 else 's'})"


# Text a spreadsheet would read as a formula (or DDE payload): OWASP's CSV-injection list.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(value: object) -> object:
    """Text that a spreadsheet would run as a formula gets a leading apostrophe; all
    other values (numbers included, even negative ones) are returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


# Messages quote values in single quotes and names (columns, fields) in double quotes;
# only the values are personal data.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'")


def _mask_message(message: str, value: str | None) -> str:
    """The message with every single-quoted text and every occurrence of `value` masked."""
    spans = [
        (m.start(), m.end(), f"{m.group(0)[0]}{mask(m.group(0)[1:-1])}{m.group(0)[0]}")
        for m in _QUOTED.finditer(message)
    ]
    if value:
        # Whole-word matches only where the value begins or ends with a word character,
        # so that a short value ("1") does not mask the inside of "Document1.URL".
        before = r"(?<!\w)" if re.match(r"\w", value) else ""
        after = r"(?!\w)" if re.search(r"\w$", value) else ""
        found = re.finditer(before + re.escape(value) + after, message, flags=re.IGNORECASE)
        spans += [(m.start(), m.end(), mask(value) or "") for m in found]
    out, at = [], 0
    for start, end, replacement in sorted(spans):
        if start >= at:  # a value inside quoted text is covered by the quoted span
            out += [message[at:start], replacement]
            at = end
    return "".join(out) + message[at:]


def _public(issue: Issue, pii: Callable[[Issue], bool]) -> dict[str, Any]:
    data = issue.to_dict()
    if pii(issue):
        data["value"] = mask(issue.value)
        data["message"] = _mask_message(issue.message, issue.value)
    return data


# --- report.json -----------------------------------------------------------------------


def _summary_dict(summary: Summary) -> dict[str, Any]:
    data = asdict(summary)
    data["generated_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return data


def _replace_atomically(path: Path, write: Callable[[IO[str]], None]) -> None:
    # Write beside the target, then rename: a crash never leaves half a report.
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="\n") as f:
            write(f)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise LoaderError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_report_json(
    path: Path, summary: Summary, issues: Iterable[Issue], *, pii: Callable[[Issue], bool]
) -> None:
    """report.json: the summary, then one issue per line, streamed from `issues`."""

    def write(f: IO[str]) -> None:
        f.write('{"summary": ' + json.dumps(_summary_dict(summary), ensure_ascii=False))
        f.write(',\n "issues": [')
        separator = "\n  "
        for issue in issues:
            f.write(separator + json.dumps(_public(issue, pii), ensure_ascii=False))
            separator = ",\n  "
        f.write("\n ]}\n")

    _replace_atomically(path, write)


# --- report.html -------------------------------------------------------------------------

CODE_DESCRIPTIONS: dict[str, str] = {
    "blank-label": "A column of the header row has no name.",
    "duplicate-label": "Two columns of the header row have the same name.",
    "missing-cell": "The row has fewer cells than the header.",
    "extra-cell": "The row has more cells than the header.",
    "blank-row": "The row is empty.",
    "encoding-error": "Some bytes of the file are not text in the file's encoding.",
    "missing-column": "A column the spec names is not in the file.",
    "cell-error": "The cell holds a spreadsheet error such as #N/A or #REF!.",
    "missing-value": "A required field is empty in the source.",
    "missing-key": "The row has no value in the key column(s), so it cannot be tracked.",
    "duplicate-key": "Another row has the same key; only the first would be loaded.",
    "invalid-date": "The text is not a date in any of the spec's formats.",
    "invalid-number": "The text is not a number.",
    "invalid-boolean": "The text is none of the spec's true or false words.",
    "unmapped-value": "The code is not in the spec's value map.",
    "required": "A value the target needs is missing.",
    "type": "The value has the wrong kind (text, number, true/false).",
    "enum": "The value is not in the list of allowed values.",
    "const": "The value must be one fixed value.",
    "format": "The value is not well formed (for example an e-mail address).",
    "pattern": "The value does not have the expected shape (for example a date).",
    "max-length": "The value is longer than the target accepts.",
    "min-length": "The value is shorter than the target accepts.",
    "maximum": "The number is too large.",
    "minimum": "The number is too small.",
    "any-of": "None of the accepted combinations of fields is present.",
    "one-of": "The values fit none, or more than one, of the accepted forms.",
    "additional-properties": "The payload has a field the target does not accept.",
    "dependent-required": "A field is given without another field it needs.",
}

_STYLE = """
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:#1b1b1b;background:#fff;margin:0 auto;max-width:72rem;padding:1.5rem}
h1{font-size:1.6rem;margin:0 0 .25rem}h2{font-size:1.2rem;margin:2rem 0 .5rem}
.meta{color:#555;margin:0 0 1rem}.note{background:#fff4e5;border-left:4px solid #e08a00;
padding:.5rem .75rem}
.counts{display:flex;flex-wrap:wrap;gap:.75rem;padding:0;list-style:none}
.counts li{border:1px solid #ddd;border-radius:6px;padding:.5rem 1rem;min-width:7rem}
.counts b{display:block;font-size:1.5rem}.bad b{color:#b00020}.good b{color:#1a7f37}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border-bottom:1px solid #e5e5e5;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f6f6;position:sticky;top:0}td.n{text-align:right;font-variant-numeric:tabular-nums}
td.v{font-family:ui-monospace,Consolas,monospace;white-space:pre-wrap;word-break:break-all}
tr.warning td{color:#6b4e00}input{font:inherit;padding:.3rem .5rem;margin:.5rem 0;width:20rem}
@media print{th{position:static}input{display:none}}
"""

# Optional comfort: filter rows by text, sort by clicking a header. The page reads the
# same without it. No network, no libraries.
_SCRIPT = """
(function(){var f=document.getElementById('filter'),t=document.getElementById('issues');
if(!f||!t)return;f.hidden=false;var b=t.tBodies[0];
f.addEventListener('input',function(){var q=f.value.toLowerCase();
for(var r of b.rows)r.hidden=q&&r.textContent.toLowerCase().indexOf(q)<0;});
t.tHead.rows[0].querySelectorAll('th').forEach(function(h,i){h.style.cursor='pointer';
h.addEventListener('click',function(){var rs=Array.from(b.rows),
d=h.dataset.d=h.dataset.d==='a'?'d':'a';
rs.sort(function(x,y){var p=x.cells[i].textContent,q=y.cells[i].textContent,
c=p.localeCompare(q,undefined,{numeric:true});return d==='a'?c:-c;});
rs.forEach(function(r){b.appendChild(r);});});});})();
"""


def _e(value: object) -> str:
    return "" if value is None else html.escape(str(value), quote=True)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: set[int]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "\n".join(
        "<tr>"
        + "".join(
            f'<td class="n">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _column_key(issue: Issue) -> tuple[str, str]:
    """(column label, letter) an issue is counted under in 'Issues by column'."""
    letter = column_letter(issue.column_number) if issue.column_number else ""
    if issue.column:
        label = f"{issue.sheet}!{issue.column}" if issue.sheet else issue.column
    elif issue.field:
        label = f"(payload field {issue.field})"
    else:
        label = "(whole row or file)"
    return label, letter


def write_report_html(
    path: Path,
    summary: Summary,
    issues: Sequence[Issue],
    *,
    pii: Callable[[Issue], bool],
    title: str,
    max_rows: int = HTML_ROW_CAP,
) -> None:
    """report.html: summary counts, issues by code and by column, then the issues
    themselves (the first `max_rows`; the rest are counted and left to report.json)."""
    meta = _summary_dict(summary)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">Source <b>{_e(summary.source)}</b>'
        + (f", sheet <b>{_e(summary.sheet)}</b>" if summary.sheet else "")
        + f" &middot; spec <b>{_e(summary.spec)}</b>"
        + f" &middot; checked {_e(meta['generated_at'])}</p>",
    ]
    if summary.stopped_early:
        parts.append(
            '<p class="note">The check stopped early: the error budget (--max-errors) was '
            "spent, so rows after the last one counted here were not checked.</p>"
        )
    counts = [
        ("Rows", summary.rows, ""),
        ("Valid", summary.valid, "good"),
        ("Invalid", summary.invalid, "bad" if summary.invalid else "good"),
        ("Issues", summary.issues, "bad" if summary.issues else "good"),
        ("Warnings", summary.warnings, ""),
    ]
    parts.append(
        '<ul class="counts">'
        + "".join(f'<li class="{c}"><b>{n:,}</b>{_e(label)}</li>' for label, n, c in counts)
        + "</ul>"
    )
    if not issues:
        parts.append("<p>No issues: every row is ready to load.</p>")
    else:
        by_code = Counter(i.code for i in issues)
        parts.append("<h2>Issues by code</h2>")
        parts.append(
            _table(
                ["Code", "Count", "What it means"],
                (
                    [f"<code>{_e(code)}</code>", f"{n:,}", _e(CODE_DESCRIPTIONS.get(code, ""))]
                    for code, n in by_code.most_common()
                ),
                numeric={1},
            )
        )
        by_column = Counter(_column_key(i) for i in issues)
        parts.append("<h2>Issues by column</h2>")
        parts.append(
            _table(
                ["Column", "Letter", "Count"],
                (
                    [_e(label), _e(letter), f"{n:,}"]
                    for (label, letter), n in by_column.most_common()
                ),
                numeric={2},
            )
        )
        parts.append(_issue_section(issues, pii, max_rows))
    parts.append(f"<script>{_SCRIPT}</script></body></html>\n")
    page = "\n".join(parts)

    def write(f: IO[str]) -> None:
        f.write(page)

    _replace_atomically(path, write)


def _issue_section(issues: Sequence[Issue], pii: Callable[[Issue], bool], max_rows: int) -> str:
    shown = issues[:max_rows]
    rows = []
    for issue in shown:
        data = _public(issue, pii)
        where = issue.where if (issue.cell or issue.row is not None) else ""
        rows.append(
            f'<tr class="{_e(issue.severity)}"><td>{_e(where)}</td>'
            f'<td class="n">{_e(issue.row)}</td><td>{_e(issue.column)}</td>'
            f"<td>{_e(issue.field)}</td><td><code>{_e(issue.code)}</code></td>"
            f'<td>{_e(data["message"])}</td><td class="v">{_e(data["value"])}</td></tr>'
        )
    head = "".join(
        f"<th>{h}</th>" for h in ("Where", "Row", "Column", "Field", "Code", "Message", "Value")
    )
    section = [
        f"<h2>All issues ({len(issues):,})</h2>",
        '<input id="filter" type="search" placeholder="Filter issues" hidden>',
        f'<table id="issues"><thead><tr>{head}</tr></thead><tbody>',
        *rows,
        "</tbody></table>",
    ]
    if len(issues) > len(shown):
        section.append(
            f'<p class="note">… and {len(issues) - len(shown):,} more, see report.json.</p>'
        )
    return "\n".join(section)


# --- rejects / failures tables ---------------------------------------------------------

_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")


class TableWriter:
    """Writes rows to .csv (UTF-8 with BOM, so Excel reads it right) or .xlsx (openpyxl
    write-only: streamed, every text cell stored as text, dates as dates).

    Formula safety: in CSV, text that a spreadsheet would run gets a leading apostrophe
    (`formula_safe`). In xlsx the text is kept exactly and stored as a text cell with
    Excel's "quote prefix" flag, the flag Excel itself sets when someone types '=1+2:
    it never runs, and the fixed file still feeds back the original value.
    """

    def __init__(
        self,
        path: Path,
        columns: Sequence[str],
        *,
        sheet: str | None = None,
        header_row: int = 1,
        preamble: str | None = None,
    ) -> None:
        """`header_row` > 1 puts that many rows above the header (the first holds `preamble`),
        so a rejects file keeps its source's layout and loads with the same spec."""
        self.path = path
        self.columns = list(columns)
        self._file: IO[str] | None = None
        self._csv: Any = None
        self._book: Workbook | None = None
        self._sheet: WriteOnlyWorksheet | None = None
        suffix = path.suffix.lower()
        try:
            if suffix == ".csv":
                self._file = path.open("w", encoding="utf-8-sig", newline="")
                self._csv = csv.writer(self._file, quoting=csv.QUOTE_MINIMAL)
            elif suffix == ".xlsx":
                self._book = Workbook(write_only=True)
                name = _BAD_SHEET_CHARS.sub("_", sheet or path.stem)[:31] or "Sheet1"
                self._sheet = self._book.create_sheet(title=name)
            else:
                raise LoaderError(f"{path}: a table file must end in .csv or .xlsx")
        except OSError as exc:
            raise LoaderError(f"cannot write {path}: {exc.strerror or exc}") from exc
        for lead in range(header_row - 1):
            self._write_row([preamble] if lead == 0 and preamble else [])
        self._write_row(self.columns)

    def write(self, values: Sequence[object]) -> None:
        if len(values) != len(self.columns):
            raise ValueError(f"{len(values)} values for {len(self.columns)} columns")
        self._write_row(values)

    def _write_row(self, values: Sequence[object]) -> None:
        if self._csv is not None:
            self._csv.writerow([_csv_text(v) for v in values])
        elif self._sheet is not None:
            self._sheet.append([_xlsx_cell(self._sheet, v) for v in values])
        else:
            raise ValueError(f"{self.path} is closed")

    def close(self) -> None:
        try:
            if self._file is not None:
                self._file.close()
            if self._book is not None:
                self._book.save(self.path)
        except OSError as exc:
            raise LoaderError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        finally:
            self._file = self._csv = self._book = self._sheet = None

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _csv_text(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")  # the form Excel reads back as a date-time
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return formula_safe(value)


def _xlsx_cell(sheet: WriteOnlyWorksheet, value: object) -> object:
    if value is None or isinstance(value, bool | int | float | dt.date | dt.time):
        return value  # openpyxl writes numbers as numbers and dates with a date format
    # XML 1.0 cannot carry most control characters; U+FFFD shows where one was.
    text = ILLEGAL_CHARACTERS_RE.sub("\ufffd", str(value))
    if not text.startswith(FORMULA_STARTS):
        return text  # plain text: openpyxl stores it as a string (a cell object costs 50 us)
    cell = WriteOnlyCell(sheet, value=text)
    cell.data_type = "s"  # openpyxl would store '=…' as a formula; this keeps it text
    cell.quotePrefix = True
    return cell
