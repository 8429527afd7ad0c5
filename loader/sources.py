"""Stream rows from CSV/TSV/XLSX files with the position a spreadsheet user sees.

`open_table(path)` returns a `Table`: the header (labels as the spec names columns), the
structure problems of the header, and an iterator of `Row`s, each with its number as a
spreadsheet counts rows, its values (one per header column), the cells beyond the header,
and its own structure issues (frictionless codes: missing-cell, extra-cell, blank-row;
plus encoding-error and cell-error). Memory stays flat in the number of rows.

Empty cells are None in both kinds: an empty CSV field and an absent xlsx cell mean the
same thing to a mapping. The xlsx conversion rules are in `loader.xlsx`.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import hashlib
import io
import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO, Literal

import charset_normalizer

from loader import xlsx
from loader.errors import SourceError
from loader.issues import Issue, column_letter

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


# ---------------------------------------------------------------- the table API

Kind = Literal["csv", "xlsx"]
_SAMPLE = 1 << 16  # bytes read to detect the encoding and sniff the delimiter
_DELIMITERS = ",;\t|"
_CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
# Legacy encodings tried when a file is not UTF-8, in order of preference when
# charset-normalizer finds several equally clean: Western first (the common case), and
# ISO-8859-7 before Cyrillic code pages because it leaves bytes undefined that Russian
# text needs, so a clean ISO-8859-7 decode is the stronger evidence.
_LEGACY = (
    "cp1252", "iso8859_15", "iso8859_7", "cp1253", "cp1250", "iso8859_2", "cp1251",
    "koi8_r", "iso8859_5", "cp1254", "cp1257", "cp1255", "iso8859_8", "cp1256",
    "mac_roman", "cp850", "gb18030", "big5", "shift_jis", "euc_kr",
)  # fmt: skip


class Table:
    """An open source table. Iterate it (once) for rows; use it as a context manager or
    call close() to release the file."""

    path: Path
    kind: Kind
    sheet: str | None
    encoding: str | None
    delimiter: str | None
    header: list[str]
    header_row: int
    header_issues: list[Issue]
    row_count_hint: int | None

    def __init__(
        self,
        *,
        path: Path,
        kind: Kind,
        header: list[str],
        header_row: int,
        rows: Iterator[Row],
        closer: Callable[[], None],
        sheet: str | None = None,
        encoding: str | None = None,
        delimiter: str | None = None,
        row_count_hint: int | None = None,
    ) -> None:
        self.path = path
        self.kind = kind
        self.sheet = sheet
        self.encoding = encoding
        self.delimiter = delimiter
        self.header = header
        self.header_row = header_row
        self.header_issues = header_issues(header, sheet)
        self.row_count_hint = row_count_hint
        self._rows = rows
        self._closer = closer

    def __iter__(self) -> Iterator[Row]:
        return self._rows

    def close(self) -> None:
        self._closer()

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f" sheet={self.sheet!r}" if self.sheet else ""
        return f"<Table {self.kind} {str(self.path)!r}{where} columns={len(self.header)}>"


def open_table(
    path: str | Path,
    *,
    sheet: str | None = None,
    header_row: int = 1,
    encoding: str | None = None,
    delimiter: str | None = None,
    start: tuple[int, int | None] | None = None,
) -> Table:
    """Open a CSV/TSV or xlsx file as a table of rows. The kind comes from the file's first
    bytes, not its name, so a workbook saved as `.csv` is still read as a workbook.

    `start=(row_number, byte_offset)` resumes: the header is read from the top, then a CSV
    reader seeks to `byte_offset` and numbers the next record `row_number`; an xlsx reader
    skips rows before `row_number` without converting them."""
    path = Path(path)
    if header_row < 1:
        raise SourceError(f"header_row must be 1 or more, not {header_row}", path=str(path))
    try:
        with path.open("rb") as probe:
            magic = probe.read(8)
    except FileNotFoundError as exc:
        raise SourceError("file not found", path=str(path)) from exc
    except IsADirectoryError as exc:
        raise SourceError("is a directory, not a file", path=str(path)) from exc
    except OSError as exc:
        raise SourceError(f"cannot be read: {exc.strerror or exc}", path=str(path)) from exc
    if magic.startswith(_CFB_MAGIC):
        raise SourceError(_cfb_message(path), path=str(path))
    if magic.startswith(_ZIP_MAGIC):
        return _open_xlsx(path, sheet, header_row, start)
    return _open_csv(path, header_row, encoding, delimiter, start)


def fingerprint(path: str | Path) -> str:
    """The sha256 of the file's bytes, streamed: a resumed run checks it is the same file."""
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise SourceError(f"cannot be read: {exc.strerror or exc}", path=str(path)) from exc
    return digest.hexdigest()


def clean_label(label: str) -> str:
    """Strip a header label; a label broken over lines keeps its words with single spaces."""
    label = label.strip()
    if "\n" in label or "\r" in label:
        return " ".join(label.split())
    return label


def header_issues(header: list[str], sheet: str | None = None) -> list[Issue]:
    """blank-label and duplicate-label, as frictionless reports them: a blank label is never
    a duplicate, and each later copy of a label is reported at its own column."""
    issues: list[Issue] = []
    seen: dict[str, int] = {}
    for number, label in enumerate(header, start=1):
        letter = column_letter(number)
        if not label:
            message = f"column {letter} (number {number}) has no label in the header"
            issues.append(_header_issue("blank-label", message, number, label, sheet))
        elif label in seen:
            first = seen[label]
            message = (
                f'column {letter} repeats the label "{label}" of column {column_letter(first)}'
            )
            issues.append(_header_issue("duplicate-label", message, number, label, sheet))
        else:
            seen[label] = number
    return issues


def _header_issue(code: str, message: str, number: int, label: str, sheet: str | None) -> Issue:
    return Issue(
        code, message, sheet=sheet, column=label or None, column_number=number,
        value=label or None, severity="warning",
    )  # fmt: skip


def _blank_row(number: int, width: int, offset: int | None, sheet: str | None) -> Row:
    issue = Issue(
        "blank-row", f"row {number} is blank", row=number, sheet=sheet, severity="warning"
    )
    return Row(number, [None] * width, [issue], offset=offset, blank=True)


def _missing_cells(number: int, count: int, header: list[str], sheet: str | None) -> list[Issue]:
    """missing-cell for each column a short row lacks."""
    base = f"row {number} has {count} cells, the header has {len(header)}"
    return [
        Issue(
            "missing-cell",
            f'{base}: no cell for column {column_letter(col)} "{header[col - 1]}"',
            row=number,
            sheet=sheet,
            column=header[col - 1] or None,
            column_number=col,
        )
        for col in range(count + 1, len(header) + 1)
    ]


def _extra_cells(
    number: int, count: int, width: int, extra: list[CellValue], sheet: str | None
) -> list[Issue]:
    """extra-cell for each cell beyond the header, one per cell as frictionless reports
    them; a spreadsheet's empty cells (None in `extra`) are not cells at all."""
    base = f"row {number} has {count} cells, the header has {width}"
    return [
        Issue(
            "extra-cell",
            base,
            row=number,
            sheet=sheet,
            column_number=col,
            value=None if value is None else str(value),
        )
        for col, value in enumerate(extra, start=width + 1)
        if value is not None or sheet is None
    ]


# ---------------------------------------------------------------- CSV / TSV

# Long free-text cells (case notes) exceed csv's default 128 KiB field limit.
csv.field_size_limit(max(csv.field_size_limit(), 1 << 24))


class _Lines:
    """The binary file's lines, decoded one by one, tracking the byte position after the
    last line handed out. csv.reader never reads ahead of the record it returns, so after
    each record `pos` is where the next record starts (the resume offset)."""

    __slots__ = ("bad", "codec", "pos", "stream")

    def __init__(self, stream: BinaryIO, codec: str, pos: int) -> None:
        stream.seek(pos)
        self.stream = stream
        self.codec = codec
        self.pos = pos
        self.bad = False  # a line of the current record did not decode

    def __iter__(self) -> Iterator[str]:
        codec = self.codec
        pos = self.pos
        for raw in self.stream:
            pos += len(raw)
            self.pos = pos
            try:
                yield raw.decode(codec)
            except UnicodeDecodeError:
                self.bad = True
                yield raw.decode(codec, "replace")


@dataclass(frozen=True, slots=True)
class _Dialect:
    codec: str  # Python codec used per line
    encoding: str  # as reported: utf-8-sig when the file starts with a BOM
    delimiter: str
    skipinitialspace: bool
    body: int  # byte offset after the BOM


def _open_csv(
    path: Path,
    header_row: int,
    encoding: str | None,
    delimiter: str | None,
    start: tuple[int, int | None] | None,
) -> Table:
    stream = path.open("rb")
    try:
        dialect = _csv_dialect(stream, path, encoding, delimiter)
        lines = _Lines(stream, dialect.codec, dialect.body)
        reader = _reader(lines, dialect)
        record = next(itertools.islice(_checked(reader, path, 0), header_row - 1, None), None)
        if record is None:
            raise SourceError(f"has no row {header_row} to read the header from", path=str(path))
        header = [clean_label(label) for label in record]
        if not any(header):
            raise SourceError(f"row {header_row}, the header, is blank", path=str(path))
        header_bad = lines.bad
        lines.bad = False
        number = header_row
        if start is not None:
            number, lines, reader = _resume(stream, path, dialect, lines, reader, start, header_row)
        rows = _csv_rows(lines, reader, header, number, path)
        table = Table(
            path=path, kind="csv", header=header, header_row=header_row, rows=rows,
            closer=stream.close, encoding=dialect.encoding, delimiter=dialect.delimiter,
        )  # fmt: skip
        if header_bad:
            message = f"row {header_row}, the header, does not decode as {dialect.encoding}"
            table.header_issues.append(
                Issue("encoding-error", message, row=header_row, severity="warning")
            )
        return table
    except BaseException:
        stream.close()
        raise


def _reader(lines: _Lines, dialect: _Dialect) -> Iterator[list[str]]:
    return csv.reader(lines, delimiter=dialect.delimiter, skipinitialspace=dialect.skipinitialspace)


def _checked(reader: Iterator[list[str]], path: Path, number: int) -> Iterator[list[str]]:
    """Records, with csv's rare hard errors turned into a SourceError naming the row."""
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise SourceError(
                f"row {number + 1} cannot be read as CSV: {exc}", path=str(path)
            ) from exc
        number += 1
        yield record


def _resume(
    stream: BinaryIO,
    path: Path,
    dialect: _Dialect,
    lines: _Lines,
    reader: Iterator[list[str]],
    start: tuple[int, int | None],
    header_row: int,
) -> tuple[int, _Lines, Iterator[list[str]]]:
    """Position the reader so that the next record is row `start[0]`: by seeking to the
    byte offset when it is known, else by reading (and dropping) the records before it."""
    row_number, offset = start
    if offset is None:
        skipped = itertools.islice(reader, max(row_number - 1 - header_row, 0))
        for _ in _checked(skipped, path, header_row):
            pass
        return max(row_number - 1, header_row), lines, reader
    size = path.stat().st_size
    if offset < lines.pos or offset > size:
        raise SourceError(
            f"cannot resume at byte {offset}: the header ends at byte {lines.pos} and the file "
            f"has {size} bytes; has the file changed since the run began?",
            path=str(path),
        )
    lines = _Lines(stream, dialect.codec, offset)
    return row_number - 1, lines, _reader(lines, dialect)


def _csv_rows(
    lines: _Lines, reader: Iterator[list[str]], header: list[str], number: int, path: Path
) -> Iterator[Row]:
    width = len(header)
    offset = lines.pos
    for record in _checked(reader, path, number):
        number += 1
        count = len(record)
        if not any(record):  # [] for an empty line, or only empty fields
            row = _blank_row(number, width, offset, None)
        elif count == width:
            row = Row(number, [cell or None for cell in record], offset=offset)
        elif count < width:
            values: list[CellValue] = [cell or None for cell in record]
            values.extend([None] * (width - count))
            row = Row(number, values, _missing_cells(number, count, header, None), offset=offset)
        else:
            extra: list[CellValue] = [cell or None for cell in record[width:]]
            issues = _extra_cells(number, count, width, extra, None)
            row = Row(number, [c or None for c in record[:width]], issues, extra, offset)
        if lines.bad:
            lines.bad = False
            message = (
                f"row {number} does not decode as {lines.codec}; "
                "the bytes that do not were replaced with \ufffd"
            )
            row.issues.append(Issue("encoding-error", message, row=number))
        yield row
        offset = lines.pos


def _csv_dialect(
    stream: BinaryIO, path: Path, encoding: str | None, delimiter: str | None
) -> _Dialect:
    sample = stream.read(_SAMPLE)
    if not sample:
        raise SourceError("is empty: there is no header row to read", path=str(path))
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SourceError(
            "is UTF-16 text, which is not supported: save it as CSV UTF-8", path=str(path)
        )
    if b"\x00" in sample:
        raise SourceError(
            "is not a text file (it contains NUL bytes): expected CSV/TSV text or an xlsx workbook",
            path=str(path),
        )
    complete = len(sample) < _SAMPLE
    bom = sample.startswith(codecs.BOM_UTF8)
    body = len(codecs.BOM_UTF8) if bom else 0
    if encoding is not None:
        try:
            codec = codecs.lookup(encoding).name
        except LookupError as exc:
            raise SourceError(f"unknown encoding {encoding!r}", path=str(path)) from exc
        if codec in ("utf-16", "utf-32") or codec.startswith(("utf-16-", "utf-32-")):
            raise SourceError(f"encoding {encoding!r} is not supported: save it as CSV UTF-8")
        if codec == "utf-8-sig":
            codec = "utf-8"
    elif bom:
        codec = "utf-8"
    else:
        codec = _detect_encoding(stream, sample[body:], complete)
    reported = "utf-8-sig" if bom and codec == "utf-8" else codec
    text = sample[body:].decode(codec, "replace")
    if not complete and "\n" in text:
        text = text[: text.rindex("\n") + 1]  # a sample's last line may be cut short
    if delimiter is not None:
        delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter, delimiter)
        if len(delimiter) != 1:
            raise SourceError(f"the delimiter must be one character, not {delimiter!r}")
    elif path.suffix.lower() in (".tsv", ".tab"):
        delimiter = "\t"
    else:
        delimiter = _sniff_delimiter(text)
    return _Dialect(codec, reported, delimiter, _initial_space(text, delimiter), body)


def _detect_encoding(stream: BinaryIO, sample: bytes, complete: bool) -> str:
    """UTF-8 when the bytes decode as UTF-8, else the cleanest legacy code page. A sample
    that is plain ASCII decides nothing: the first non-ASCII line further on is looked at,
    so that one accented name on row 50,000 does not turn into an encoding error."""
    if sample.isascii() and not complete:
        sample = _non_ascii_sample(stream)
        complete = False
    if sample.isascii():
        return "utf-8"
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if not complete and exc.start >= len(sample) - 3 and exc.reason == "unexpected end of data":
            return "utf-8"  # a character cut by the end of the sample
    results = charset_normalizer.from_bytes(sample, cp_isolation=list(_LEGACY))
    if not results:
        return "cp1252"
    best = min(result.chaos for result in results)
    # A result stands for every code page that decodes the sample to the same text.
    tied = [
        name
        for result in results
        if result.chaos <= best + 0.01
        for name in [result.encoding, *result.could_be_from_charset]
    ]
    return min(tied, key=lambda name: _LEGACY.index(name) if name in _LEGACY else len(_LEGACY))


def _non_ascii_sample(stream: BinaryIO) -> bytes:
    """Up to a sample's worth of lines starting with the first line that is not ASCII."""
    position = _SAMPLE
    stream.seek(position)
    while block := stream.read(1 << 20):
        if not block.isascii():
            first = next(k for k, byte in enumerate(block) if byte > 127)
            line_start = block.rfind(b"\n", 0, first) + 1
            stream.seek(position + line_start)
            return stream.read(_SAMPLE)
        position += len(block)
    return b""


def _sniff_delimiter(text: str) -> str:
    """The candidate that splits the sample's records into the most consistent number of
    fields (more than one); ',' when none does (a one-column file)."""
    best, best_score = ",", (0.0, 0)
    for candidate in _DELIMITERS:
        try:
            counts = [
                len(record)
                for record in itertools.islice(
                    csv.reader(io.StringIO(text), delimiter=candidate), 200
                )
                if record
            ]
        except csv.Error:
            continue
        if not counts:
            continue
        width, seen = Counter(counts).most_common(1)[0]
        if width < 2:
            continue
        score = (round(seen / len(counts), 2), width)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _initial_space(text: str, delimiter: str) -> bool:
    """True when every non-empty field after the first starts with a space (`1, "a"`), as
    some exports write: then the space is layout, not data, and quotes still work."""
    try:
        records = list(itertools.islice(csv.reader(io.StringIO(text), delimiter=delimiter), 200))
    except csv.Error:
        return False
    later = [cell for record in records for cell in record[1:] if cell]
    return bool(later) and all(cell.startswith(" ") for cell in later)


# ---------------------------------------------------------------- XLSX


def _open_xlsx(
    path: Path, sheet: str | None, header_row: int, start: tuple[int, int | None] | None
) -> Table:
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        pass  # the bytes say workbook; read it as one whatever its name
    wb = xlsx.open_workbook(str(path))
    try:
        info = _pick_sheet(wb, sheet, path)
        data_from = max(header_row + 1, start[0] if start else 0)
        raw_rows = xlsx.stream_rows(wb, info, header_row, data_from)
        converter = xlsx.Converter(wb)
        first = next(raw_rows, None)
        labels: list[CellValue] = []
        pending = first
        if first is not None and first.number == header_row:
            labels = converter.row(first.cells)[0]
            pending = None
        if not any(label is not None for label in labels):
            hint = ""
            if pending is not None:
                hint = f"; its first row with data is row {pending.number}: set header_row"
            elif first is None:
                hint = "; it has no data"
            raise SourceError(
                f'sheet "{info.name}" has nothing in row {header_row}, the header row{hint}',
                path=str(path),
            )
        header = [_label(label) for label in labels]
        last = xlsx.dimension_last_row(wb, info)
        hint_rows = max(last - data_from + 1, 0) if last else None
        rows = _xlsx_rows(converter, raw_rows, pending, header, info.name, data_from)
        return Table(
            path=path, kind="xlsx", header=header, header_row=header_row, rows=rows,
            closer=wb.close, sheet=info.name, row_count_hint=hint_rows,
        )  # fmt: skip
    except BaseException:
        wb.close()
        raise


def _label(value: CellValue) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return clean_label(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def _xlsx_rows(
    converter: xlsx.Converter,
    raw_rows: Iterator[xlsx.RawRow],
    pending: xlsx.RawRow | None,
    header: list[str],
    sheet: str,
    data_from: int,
) -> Iterator[Row]:
    """Rows from `data_from` on. Rows with no cells (absent from the XML, or only empty
    cells) between rows with data are blank rows; blank rows after the last row with data
    are formatting, not data, and are not reported."""
    width = len(header)
    expected = data_from
    for raw in itertools.chain([pending] if pending else [], raw_rows):
        values, errors = converter.row(raw.cells)
        if not values and not errors:
            continue
        for number in range(expected, raw.number):
            yield _blank_row(number, width, None, sheet)
        expected = raw.number + 1
        count = len(values)
        issues: list[Issue] = []
        extra: list[CellValue] = []
        if count < width:
            values.extend([None] * (width - count))
        elif count > width:
            extra = values[width:]
            del values[width:]
            issues = _extra_cells(raw.number, count, width, extra, sheet)
        for col, text in errors:
            label = header[col - 1] if col <= width else None
            message = f"{sheet}!{column_letter(col)}{raw.number} holds the error {text}"
            issues.append(
                Issue(
                    "cell-error",
                    message,
                    row=raw.number,
                    sheet=sheet,
                    column=label or None,
                    column_number=col,
                    value=text,
                )
            )
        yield Row(raw.number, values, issues, extra)


def _pick_sheet(wb: xlsx.Workbook, name: str | None, path: Path) -> xlsx.SheetInfo:
    if not wb.sheets:
        raise SourceError("the workbook has no worksheets", path=str(path))
    if name is None:
        visible = [info for info in wb.sheets if info.state == "visible"]
        return (visible or wb.sheets)[0]
    for info in wb.sheets:
        if info.name == name:
            return info
    names = [info.name for info in wb.sheets]
    folded = [n for n in names if n.strip().casefold() == name.strip().casefold()]
    nearest = folded or difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    listing = ", ".join(
        f'"{info.name}"' + ("" if info.state == "visible" else " (hidden)") for info in wb.sheets
    )
    message = f'no sheet named "{name}"; the workbook has {listing}'
    if nearest:
        message += f'; did you mean "{nearest[0]}"?'
    raise SourceError(message, path=str(path))


def _cfb_message(path: Path) -> str:
    """An OLE compound file is either a legacy .xls or an encrypted xlsx: the encrypted one
    has an "EncryptionInfo" stream, named in UTF-16LE in the file's directory."""
    needle = "EncryptionInfo".encode("utf-16-le")
    tail = b""
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            if needle in tail + block:
                return (
                    "is password-protected (encrypted): open it in Excel, remove the password "
                    "and save it as .xlsx"
                )
            tail = block[-len(needle) :]
    return "legacy .xls is not supported: open it in Excel and save as .xlsx"
