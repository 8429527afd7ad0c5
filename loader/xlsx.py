"""A streaming, number-format-aware xlsx reader.

The workbook's metadata (sheets, visibility, relationships, the 1904 flag, number formats
per style index, shared strings) is read once by `loader.xlsxbook`; this module streams the
worksheet XML from the zip in chunks; one regular expression matches each row and a second
finds all its cells in one C-level call, so that the per-cell work is one conversion decided
once per attribute string (style and type).
openpyxl read-only does the same job about ten times slower, and python-calamine ignores
number formats (a phone number formatted `00000000000` loses its leading zero).

Conversion rules for a numeric cell, by the number format of its style:
- a date/time format: `datetime` when it shows a date and a time, `date` when it shows only
  a date, `time` when it shows only a time; elapsed formats (`[h]:mm`) stay numbers;
- text (`@`): the text Excel displays, e.g. `7700900123` (never `7700900123.0`);
- an integer pattern that can show a leading zero or puts literals between digits
  (`00000000000`, `00000`, `000-000`, `00-00-00`): the text Excel displays, e.g.
  `07700900123`, for non-negative integral values (others stay numbers);
- everything else (General, `0.00`, percent, currency, scientific, fractions): a number:
  `int` when integral, otherwise a float rounded to 15 significant digits as Excel shows it.
  Percent stays the stored fraction (25% is 0.25) and currency stays the amount: the format
  changes how a number looks, not what it is.
"""

from __future__ import annotations

import html
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import partial

from loader.errors import SourceError
from loader.xlsxbook import Kind, NumberFormat, SheetInfo, Workbook, open_workbook, unescape_ooxml

CHUNK = 1 << 20  # decompressed bytes per read; a row never needs to fit, the buffer grows


# ---------------------------------------------------------------- streaming a sheet

# One match per row (self-closing rows have no body). The row number is taken from the
# common first attribute r="N" without a second search.
_ROW = rb'<{p}row\b(?: r="(\d+)")?([^>]*?)(?:/>|>(.*?)</{p}row>)'
# All cells of a row body in one C-level findall. Cells whose first attribute is r (what
# Excel, LibreOffice and openpyxl write) take the first branch: the column letters are a
# group, the remaining attributes (` s="3" t="s"`) repeat, so what they mean is decided
# once per distinct string (see `Converter._plan`); the two common bodies, a plain inline
# string and a plain <v>, are captured directly. The attributes of a cell (r, s, t, cm, vm,
# ph) never hold a '/', so they are matched greedily up to '>' or '/>' (a lazy match costs
# a third of the row's time); a cell that breaks the rule takes the generic branch, which
# reads any attributes in any order.
_CELL = (
    rb'<{p}c r="([A-Z]+)\d+"([^>/]*)'
    rb'(?:/>|><{p}is><{p}t(?: xml:space="preserve")?>([^<]*)</{p}t></{p}is></{p}c>'
    rb"|><{p}v>([^<]*)</{p}v></{p}c>|>(.*?)</{p}c>)|"
    rb"<{p}c\b([^>]*?)(?:/>|>(.*?)</{p}c>)"
)
_ATTRS = re.compile(rb'(\w+)="([^"]*)"')
_ROW_NUMBER = re.compile(rb'\sr="(\d+)"')
_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\s+ref="[A-Z]*\d*:?[A-Z]*(\d+)"')
_SHEETDATA = re.compile(rb"<(\w+:)?sheetData\b")
_TEXT = re.compile(rb"<(?:\w+:)?t\b[^>]*>(.*?)</(?:\w+:)?t>|<(?:\w+:)?t\b[^>]*/>", re.S)
_PHONETIC = re.compile(rb"<(?:\w+:)?rPh\b.*?</(?:\w+:)?rPh>", re.S)
_VALUE = re.compile(rb"<(?:\w+:)?v>(.*?)</(?:\w+:)?v>", re.S)

# One cell as the tokeniser leaves it: (column letters, other attributes, plain inline
# text, plain <v> text, other body; generic attributes, generic body). Absent parts are b"".
RawCell = tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes]


@dataclass(slots=True)
class RawRow:
    number: int
    cells: list[RawCell]


def _column_index(letters: bytes, cache: dict[bytes, int]) -> int:
    index = cache.get(letters)
    if index is None:
        index = 0
        for ch in letters:
            index = index * 26 + ch - 64
        cache[letters] = index
    return index


def stream_rows(
    wb: Workbook, sheet: SheetInfo, header_row: int, data_from: int
) -> Iterator[RawRow]:
    """Yield the raw cells of the header row and of each row from `data_from` on that has
    any cell, in order. Other rows are matched but their cells are not tokenised."""
    try:
        stream = wb.zip.open(sheet.part)
    except KeyError as exc:
        raise SourceError(f"sheet {sheet.name!r} has no data part", path=wb.path) from exc
    with stream:
        buffer = b""
        rows: re.Pattern[bytes] | None = None
        cells: re.Pattern[bytes] | None = None
        open_tag, end_tag = b"<row", b"</row>"
        number = 0
        while True:
            try:
                chunk = stream.read(CHUNK)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise SourceError(f"sheet {sheet.name!r} is damaged: {exc}", path=wb.path) from exc
            buffer += chunk
            start = 0
            if rows is None or cells is None:
                found = _SHEETDATA.search(buffer)
                if found is None:
                    if chunk:
                        continue
                    return
                raw_prefix = found.group(1) or b""
                prefix = re.escape(raw_prefix)
                rows = re.compile(_ROW.replace(b"{p}", prefix), re.S)
                cells = re.compile(_CELL.replace(b"{p}", prefix), re.S)
                open_tag, end_tag = b"<" + raw_prefix + b"row", b"</" + raw_prefix + b"row>"
                start = found.start()
            # Whole rows only, up to the last </row>: a row cut by the chunk boundary stays
            # in the buffer for the next round. What follows the last </row> of the sheet
            # holds no cells (self-closing rows, the end of sheetData).
            cut = buffer.rfind(end_tag)
            if cut < start:
                if not chunk:
                    return
                buffer = buffer[start:]
                continue
            findall = cells.findall
            # Splitting on </row> (C) leaves one row per piece, its start tag the piece's
            # last '<row'; a regex over the row bodies would cost several times as much.
            for piece in buffer[start:cut].split(end_tag):
                at = piece.rfind(open_tag)
                if at < 0:
                    continue
                close = piece.find(b">", at)
                attrs = piece[at + len(open_tag) : close]
                if piece.find(open_tag) != at or attrs[:1] not in (b" ", b"") or close < 0:
                    # Self-closing rows before this one, or an unusual start tag: the regex.
                    for m in rows.finditer(piece + end_tag):
                        number = _row_number(m.group(1), m.group(2), number)
                        body = m.group(3)
                        if body and (number >= data_from or number == header_row):
                            raw = findall(body)
                            if raw:
                                yield RawRow(number, raw)
                    continue
                digits = attrs[4 : attrs.find(b'"', 4)] if attrs[:4] == b' r="' else b""
                number = int(digits) if digits.isdigit() else _row_number(None, attrs, number)
                if number >= data_from or number == header_row:
                    raw = findall(piece, close + 1)
                    if raw:
                        yield RawRow(number, raw)
            if not chunk:
                return
            buffer = buffer[cut + len(end_tag) :]


def _row_number(digits: bytes | None, attrs: bytes, previous: int) -> int:
    """A row's number: its r attribute, or the row after the previous one."""
    if digits is not None:
        return int(digits)
    found = _ROW_NUMBER.search(attrs)
    return int(found.group(1)) if found else previous + 1


def dimension_last_row(wb: Workbook, sheet: SheetInfo) -> int | None:
    """The last row of the sheet's <dimension ref>, read from the first bytes only."""
    try:
        with wb.zip.open(sheet.part) as stream:
            head = stream.read(1 << 14)
    except (KeyError, zipfile.BadZipFile, OSError, EOFError):
        return None
    found = _DIMENSION.search(head)
    return int(found.group(1)) if found else None


def cell_text(body: bytes) -> str:
    """The text of an inline string body (<is>...), runs joined, phonetics dropped."""
    if body.startswith(b"<is><t>") and body.endswith(b"</t></is>") and body.count(b"<") == 4:
        return unescape(body[7:-9])
    if b"<rPh" in body or b":rPh" in body:
        body = _PHONETIC.sub(b"", body)
    raw = b"".join(m.group(1) or b"" for m in _TEXT.finditer(body))
    return unescape(raw)


def cell_value_bytes(body: bytes) -> bytes | None:
    """The <v> of a cell body; fast path for the common `<v>...</v>` only body."""
    if body.startswith(b"<v>") and body.endswith(b"</v>"):
        return body[3:-4]
    found = _VALUE.search(body)
    return found.group(1) if found else None


def unescape(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    if "&" in text:
        text = html.unescape(text)
    return unescape_ooxml(text)


# ---------------------------------------------------------------- converting cells


def render_padded(pattern: str, value: int) -> str:
    """Fill an integer pattern from the right, as Excel does: '0' shows a zero where no
    digit is left, '#' nothing, '?' a space; digits beyond the pattern go in front."""
    digits = str(value)
    if value >= 0 and pattern.count("0") == len(pattern):  # "00000000000", the common case
        return digits.zfill(len(pattern))
    k = len(digits)
    out: list[str] = []
    for ch in reversed(pattern):
        if ch in "0#?":
            if k > 0:
                k -= 1
                out.append(digits[k])
            elif ch == "0":
                out.append("0")
            elif ch == "?":
                out.append(" ")
        else:
            out.append(ch)
    return digits[:k] + "".join(reversed(out))


_EPOCH_1900 = datetime(1899, 12, 30)
_EPOCH_1904 = datetime(1904, 1, 1)


def serial_to_datetime(value: float, date1904: bool) -> datetime:
    """An Excel serial number as a datetime, rounded to the millisecond like openpyxl.
    Serials below 60 in the 1900 system are a day off: Excel counts 29 February 1900."""
    if date1904:
        base = _EPOCH_1904
    else:
        base = _EPOCH_1900
        if 0 < value < 60:
            value += 1
    days = int(value // 1)
    ms = round((value - days) * 86_400_000)
    return base + timedelta(days=days, milliseconds=ms)


def general_number(value: float) -> int | float:
    """A stored double as Excel shows it: 15 significant digits, int when integral."""
    rounded = float(f"{value:.15g}")
    if rounded.is_integer() and abs(rounded) < 1e16:
        return int(rounded)
    return rounded


def general_text(value: float) -> str:
    return str(general_number(value))


_GENERAL = NumberFormat("General", Kind.NUMBER)
# The same union as loader.sources.CellValue (which imports this module).
XlsxValue = str | int | float | Decimal | bool | datetime | date | time | None


# How a cell is converted, decided once per distinct attribute string (style and type).
_NUMBER, _FORMATTED, _SHARED, _INLINE, _STR, _BOOL, _ERROR, _ISO, _SKIP = range(9)
_TYPES = {None: _NUMBER, b"n": _NUMBER, b"s": _SHARED, b"inlineStr": _INLINE, b"str": _STR,
          b"b": _BOOL, b"e": _ERROR, b"d": _ISO}  # fmt: skip
# (what to do, the style's number format, its conversion of a formatted number's <v>)
Plan = tuple[int, NumberFormat, Callable[[bytes], "XlsxValue"]]


class Converter:
    """Turns raw cells into typed values by their style's number format (decided once)."""

    def __init__(self, wb: Workbook) -> None:
        self.strings = wb.strings
        self.date1904 = wb.date1904
        self._formats = wb.formats
        self._by_style: dict[bytes | None, NumberFormat] = {None: _GENERAL}
        self._columns: dict[bytes, int] = {}
        self._plans: dict[bytes, Plan] = {}

    def _format(self, style: bytes | None) -> NumberFormat:
        fmt = self._by_style.get(style)
        if fmt is None:
            index = int(style) if style is not None and style.isdigit() else -1
            fmt = self._formats[index] if 0 <= index < len(self._formats) else _GENERAL
            self._by_style[style] = fmt
        return fmt

    def _plan_of(self, style: bytes | None, kind: bytes | None) -> Plan:
        fmt = self._format(style)
        code = _TYPES.get(kind, _SKIP)
        if code == _NUMBER and fmt.kind is not Kind.NUMBER:
            code = _FORMATTED
        return code, fmt, self._number_of(fmt)

    def _number_of(self, fmt: NumberFormat) -> Callable[[bytes], XlsxValue]:
        """`number(raw, fmt)` for one format, with the common cases taken first: a date
        or time, and a whole number shown zero-padded ('00000000000')."""
        number = self.number
        kind = fmt.kind
        if kind is Kind.PADDED and fmt.pattern.count("0") == len(fmt.pattern):
            width = len(fmt.pattern)

            def padded(raw: bytes) -> XlsxValue:
                # Up to 15 digits an integral <v> is the number Excel shows (beyond, the
                # 15-significant-digit rounding of `number` applies).
                if raw.isdigit() and len(raw) <= 15:
                    return str(int(raw)).zfill(width)
                return number(raw, fmt)

            return padded
        if kind in (Kind.DATETIME, Kind.DATE, Kind.TIME):
            date1904 = self.date1904

            def moment(raw: bytes) -> XlsxValue:
                try:
                    value = float(raw)
                except ValueError:
                    return number(raw, fmt)
                if value < 0:
                    return general_number(value)
                try:
                    when = serial_to_datetime(value, date1904)
                except (OverflowError, ValueError):  # beyond 9999-12-31, or infinite
                    return general_number(value)
                if kind is Kind.DATETIME:
                    return when
                return when.date() if kind is Kind.DATE else when.time()

            return moment
        return partial(number, fmt=fmt)

    def _plan(self, attrs: bytes) -> Plan:
        found = dict(_ATTRS.findall(attrs))
        plan = self._plans[attrs] = self._plan_of(found.get(b"s"), found.get(b"t"))
        return plan

    def number(self, raw: bytes, fmt: NumberFormat) -> XlsxValue:
        kind = fmt.kind
        if kind is Kind.NUMBER and raw.isdigit():  # the common integral case, no float
            return int(raw)
        try:
            value = float(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")
        if kind is Kind.NUMBER:
            return general_number(value)
        if kind is Kind.TEXT:
            return general_text(value)
        if kind is Kind.PADDED:
            shown = general_number(value)
            if isinstance(shown, int) and shown >= 0:
                return render_padded(fmt.pattern, shown)
            return shown
        if value < 0:  # no date before the epoch: Excel shows #####, keep the number
            return general_number(value)
        try:
            moment = serial_to_datetime(value, self.date1904)
        except (OverflowError, ValueError):  # beyond 9999-12-31, or infinite
            return general_number(value)
        if kind is Kind.DATE:
            return moment.date()
        if kind is Kind.TIME:
            return moment.time()
        return moment

    def row(self, cells: list[RawCell]) -> tuple[list[XlsxValue], list[tuple[int, str]]]:
        """Values by column (index 0 is column A; absent cells are None) and error cells
        as (column number, error text)."""
        values: list[XlsxValue] = []
        errors: list[tuple[int, str]] = []
        columns, plans = self._columns, self._plans
        col = 0
        raw: bytes | None
        value: XlsxValue
        for letters, attrs, text, v, body, generic, generic_body in cells:
            if letters:
                col = columns.get(letters) or _column_index(letters, columns)
                code, fmt, formatted = plans.get(attrs) or self._plan(attrs)
            else:  # the generic branch: attributes in any order, r maybe absent
                found = dict(_ATTRS.findall(generic))
                ref = found.get(b"r")
                letters = ref.rstrip(b"0123456789") if ref else b""
                col = _column_index(letters, columns) if letters else col + 1
                code, fmt, formatted = self._plan_of(found.get(b"s"), found.get(b"t"))
                body = generic_body
            if code == _INLINE:
                if text:
                    value = text.decode("utf-8", "replace")
                    if "&" in value or "_x" in value:
                        value = unescape_ooxml(html.unescape(value))
                elif body:
                    value = cell_text(body)
                else:
                    continue
            elif code == _NUMBER:
                raw = v or (cell_value_bytes(body) if body else None)
                if not raw:
                    continue
                value = int(raw) if raw.isdigit() else self.number(raw, fmt)
            elif code == _FORMATTED:
                raw = v or (cell_value_bytes(body) if body else None)
                if not raw:
                    continue
                value = formatted(raw)
            elif code == _SHARED:
                raw = v or (cell_value_bytes(body) if body else None)
                if raw is None or not raw.isdigit() or int(raw) >= len(self.strings):
                    continue
                value = self.strings[int(raw)]
            elif code == _SKIP or not (v or body):
                continue
            elif code == _STR:
                raw = v or cell_value_bytes(body)
                value = unescape(raw) if raw is not None else None
            elif code == _BOOL:
                value = (v or cell_value_bytes(body)) in (b"1", b"true", b"TRUE")
            elif code == _ERROR:
                raw = v or cell_value_bytes(body)
                errors.append((col, unescape(raw) if raw else "#VALUE!"))
                continue
            else:  # _ISO
                value = self._iso_date(v or cell_value_bytes(body), fmt)
            if value == "" or value is None:
                continue
            short = col - len(values)
            if short > 0:
                if short > 1:
                    values.extend([None] * (short - 1))
                values.append(value)
            else:  # a repeated column reference: the later cell wins, as in Excel
                values[col - 1] = value
        return values, errors

    @staticmethod
    def _iso_date(raw: bytes | None, fmt: NumberFormat) -> XlsxValue:
        if not raw:
            return None
        text = raw.decode("ascii", "replace")
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
        if fmt.kind is Kind.DATE:
            return moment.date()
        if fmt.kind is Kind.TIME:
            return moment.time()
        return moment


# What `loader.sources` reads a workbook with; the metadata types come from loader.xlsxbook.
__all__ = [
    "CHUNK",
    "Converter",
    "RawCell",
    "RawRow",
    "SheetInfo",
    "Workbook",
    "XlsxValue",
    "dimension_last_row",
    "open_workbook",
    "render_padded",
    "stream_rows",
]
