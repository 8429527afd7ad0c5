"""Turn source rows into payloads: compile a spec once against a header, then map fast.

Every field is compiled into one closure when the `Mapper` is made: column positions,
transforms, maps, date parsers and time zones are resolved then, so that mapping a row
does no option look-ups and no regex compiles. Problems of a row are `Issue` records in
`Mapped.issues`; a field with a problem is left out of its payload (the schema check
then does not report it a second time).

    mapper = Mapper(spec, table.header, sheet=table.sheet)
    mapped = mapper.map_row(row)      # Mapped(row, key, payloads, issues)
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from loader.errors import SpecError, SpecProblem
from loader.issues import Issue
from loader.sources import CellValue, Row
from loader.spec import AllOf, AnyOf, ColumnTest, Condition, Field, Not, Spec
from loader.transforms import (
    chain,
    from_excel_serial,
    has_time,
    is_numeric_text,
    strftime_formatter,
    strptime_parser,
    to_text,
)

Values = Sequence[CellValue]
Predicate = Callable[[Values], bool]
FieldFn = Callable[[Row, Values, list[Issue]], Any]

_OMIT: Any = object()  # a field left out of the payload
_FAIL: Any = object()  # a typed conversion that failed
_MISS: Any = object()
# Parsed dates kept per field: dates repeat a lot in real files (16,384 covers every day
# of 44 years; about 2 MB at most per date field).
_CACHE_SIZE = 16384
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_FEW = 8  # valid codes listed in an unmapped-value message


@dataclass(frozen=True, slots=True)
class StepRef:
    """A payload value filled at send time with the target id returned by that earlier
    step of the same row."""

    step: str


@dataclass(slots=True)
class Mapped:
    row: Row
    key: str  # natural key text
    payloads: dict[
        str, dict[str, Any]
    ]  # step id -> flat payload; steps whose `when` is false are absent
    issues: list[Issue]  # mapping issues of this row


class MissingColumns(SpecError):
    """Columns the spec names are not in the source header. A `SpecError` (it stops the
    run) that also carries one `missing-column` Issue per column, for reports."""

    def __init__(self, problems: list[SpecProblem], issues: list[Issue]) -> None:
        super().__init__(problems)
        self.issues = issues


def _is_empty(value: CellValue) -> bool:
    return value is None or (value.__class__ is str and (not value or value.isspace()))


def _cell_or_empty(value: CellValue) -> str:
    return "" if value is None else to_text(value)


def _cell_text(value: CellValue) -> str:
    return "" if value is None else to_text(value).strip()


class Mapper:
    def __init__(self, spec: Spec, header: Sequence[str], *, sheet: str | None = None) -> None:
        self.spec = spec
        self.sheet = sheet
        self.header = [("" if h is None else str(h)) for h in header]
        self._width = len(self.header)
        self._index: dict[str, int] = {}
        for i, label in enumerate(self.header):
            self._index.setdefault(label, i)
        for i, label in enumerate(self.header):
            # A label with stray spaces still matches: legacy exports are full of them.
            self._index.setdefault(label.strip(), i)
        self._check_columns()
        self.steps: tuple[str, ...] = tuple(step.id for step in spec.steps)
        self._origins: dict[tuple[str, str], tuple[str | None, int | None]] = {}
        self._compiled: list[tuple[str, Predicate | None, list[tuple[str, FieldFn]]]] = []
        for step in spec.steps:
            fields = [(f.name, self._field(step.id, f)) for f in step.fields]
            when = self._condition(step.when) if step.when is not None else None
            self._compiled.append((step.id, when, fields))
        self._key = tuple((c, self._index[c]) for c in spec.source.key)

    # --- public -------------------------------------------------------------------------

    def map_row(self, row: Row) -> Mapped:
        values = row.values
        if len(values) < self._width:
            values = [*values, *([None] * (self._width - len(values)))]
        issues: list[Issue] = []
        key = self._key_text(row, values, issues)
        payloads: dict[str, dict[str, Any]] = {}
        for step_id, when, fields in self._compiled:
            if when is not None and not when(values):
                continue
            payload: dict[str, Any] = {}
            for name, fn in fields:
                value = fn(row, values, issues)
                if value is not _OMIT:
                    payload[name] = value
            payloads[step_id] = payload
        return Mapped(row, key, payloads, issues)

    def key_of(self, row: Row) -> str:
        """The row's natural key text (only the key columns are read)."""
        values = row.values
        if len(values) < self._width:
            values = [*values, *([None] * (self._width - len(values)))]
        return self._key_text(row, values, None)

    def origin(self, step: str, field: str) -> tuple[str | None, int | None]:
        """The source column label and 1-based number a payload field comes from (the first
        column of a template); (None, None) for constants, from_step and unknown fields."""
        return self._origins.get((step, field), (None, None))

    # --- compile ------------------------------------------------------------------------

    def _check_columns(self) -> None:
        problems: list[SpecProblem] = []
        issues: list[Issue] = []
        seen: set[tuple[str, str]] = set()
        source = self.spec.source.file.name
        listed = ", ".join(self.header[:40]) + (", ..." if len(self.header) > 40 else "")
        for ref in self.spec.references:
            if ref.column in self._index or (ref.column, ref.path) in seen:
                continue
            seen.add((ref.column, ref.path))
            close = difflib.get_close_matches(ref.column, self.header, n=1, cutoff=0.6)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            message = f'column "{ref.column}" not found in {source}{hint} (columns: {listed})'
            problems.append(SpecProblem(str(self.spec.path), ref.line, ref.col, ref.path, message))
            issues.append(
                Issue(
                    code="missing-column",
                    message=f"{message}; the spec names it in {ref.path}",
                    sheet=self.sheet,
                    column=ref.column,
                    field=ref.field,
                    step=ref.step,
                )
            )
        if problems:
            raise MissingColumns(problems, issues)

    def _key_text(self, row: Row, values: Values, issues: list[Issue] | None) -> str:
        if not self._key:
            digest = hashlib.sha1("\x1f".join(map(_cell_text, values)).encode()).hexdigest()
            return f"row-{row.number}-{digest[:12]}"
        parts = []
        for label, i in self._key:
            text = _cell_text(values[i])
            if not text and issues is not None:
                issues.append(
                    Issue(
                        code="missing-key",
                        message=f'key column "{label}" is empty; every row needs a key '
                        "so that the ledger can track it",
                        row=row.number,
                        sheet=self.sheet,
                        column=label,
                        column_number=i + 1,
                    )
                )
            parts.append(text)
        return "|".join(parts)

    def _condition(self, condition: Condition) -> Predicate:
        if isinstance(condition, Not):
            inner = self._condition(condition.condition)
            return lambda values: not inner(values)
        if isinstance(condition, AllOf | AnyOf):
            items = tuple(self._condition(c) for c in condition.conditions)
            combine = all if isinstance(condition, AllOf) else any
            return lambda values: combine(p(values) for p in items)
        assert isinstance(condition, ColumnTest)  # the other kinds returned above
        i, operand = self._index[condition.column], condition.operand
        if condition.test == "empty":
            return lambda values: _is_empty(values[i])
        if condition.test == "not_empty":
            return lambda values: not _is_empty(values[i])
        if condition.test == "equals":
            return lambda values: _cell_text(values[i]) == operand
        if condition.test == "in":
            choices = frozenset(operand or ())
            return lambda values: _cell_text(values[i]) in choices
        search = re.compile(str(operand)).search
        return lambda values: search(_cell_text(values[i])) is not None

    def _field(self, step: str, field: Field) -> FieldFn:
        if field.from_step is not None:
            ref = StepRef(field.from_step)
            return self._guarded(field, lambda row, values, issues: ref)
        if field.value is not None:
            constant = self._output(field, field.value)
            return self._guarded(field, lambda row, values, issues: constant)
        label: str | None = None
        number: int | None = None
        get: Callable[[Values], str] | None = None
        idx = 0
        if field.column is not None:
            idx = self._index[field.column]
            label, number = field.column, idx + 1
        elif field.template is not None:
            get = self._template(field)
            label = field.template.columns[0] if field.template.columns else None
            number = self._index[label] + 1 if label is not None else None
        self._origins[(step, field.name)] = (label, number)
        sheet, name = self.sheet, field.name

        def issue(row: Row, code: str, message: str, value: CellValue) -> Issue:
            return Issue(
                code, message, row.number, sheet, label, number, name, to_text(value), step
            )

        default = _MISS if field.default is None else self._output(field, field.default)
        required = field.required
        where = f'column "{label}"' if field.column is not None else "its template"

        def empty(row: Row, cell: CellValue, issues: list[Issue]) -> Any:
            if default is not _MISS:
                return default
            if required:
                message = f"{name} is required but {where} is empty; fill it in or give a default"
                issues.append(issue(row, "missing-value", message, cell))
            return _OMIT

        tx = chain(field.transform)
        vmap = field.map
        on_unmapped = field.on_unmapped
        few = ", ".join(sorted(map(str, vmap or ()))[:_FEW])
        codes = f"{few}, ..." if vmap and len(vmap) > _FEW else few
        convert, fail_code, fail = self._converter(field)
        when = self._condition(field.when) if field.when is not None else None

        if vmap is None and convert is None:
            if get is None:
                return self._guarded(field, _text_field(idx, tx, empty))
            if when is None:
                return _template_field(get, tx, empty)

        def run(row: Row, values: Values, issues: list[Issue]) -> Any:
            if when is not None and not when(values):
                return _OMIT
            cell = values[idx] if get is None else get(values)
            if cell is None:
                return empty(row, cell, issues)
            value: Any = cell
            if cell.__class__ is str:
                if tx is not None:
                    value = tx(cell)
                if not value or value.isspace():
                    return empty(row, cell, issues)
            elif tx is not None or vmap is not None:
                value = to_text(cell) if tx is None else tx(to_text(cell))
                if not value or value.isspace():
                    return empty(row, cell, issues)
            if vmap is not None:
                mapped = vmap.get(value, _MISS)
                if mapped is _MISS:
                    if on_unmapped == "default":
                        return default
                    if on_unmapped == "error":
                        message = f"{value!r} is not in the map of {name} (codes: {codes})"
                        issues.append(issue(row, "unmapped-value", message, cell))
                        return _OMIT
                    mapped = value
                value = mapped
            if convert is None:
                return value if value.__class__ is str else to_text(value)
            out = convert(value)
            if out is _FAIL:
                issues.append(issue(row, fail_code, fail(value), cell))
                return _OMIT
            return out

        return run

    def _guarded(self, field: Field, fn: FieldFn) -> FieldFn:
        """A constant or from_step field, with its `when` if it has one."""
        if field.when is None:
            return fn
        when = self._condition(field.when)
        return lambda row, values, issues: fn(row, values, issues) if when(values) else _OMIT

    def _template(self, field: Field) -> Callable[[Values], str]:
        assert field.template is not None  # callers check
        parts = field.template.parts
        # One str.format call per row: literal braces escaped, one "{}" slot per placeholder.
        pattern = "".join(
            text.replace("{", "{{").replace("}", "}}") + ("{}" if c is not None else "")
            for text, c in parts
        )
        slots = [self._index[c] for _, c in parts if c is not None]
        if not slots:
            return lambda values: pattern.format()

        def render(values: Values) -> str:
            cells = [values[i] for i in slots]
            for cell in cells:
                if cell.__class__ is not str:  # None and typed cells: rare, convert all
                    cells = [_cell_or_empty(c) for c in cells]
                    break
            return pattern.format(*cells)

        return render

    @staticmethod
    def _output(field: Field, value: Any) -> Any:
        """A constant or default as it goes into the payload: typed for typed fields."""
        if (field.number or field.integer or field.boolean) and not isinstance(value, str):
            return value
        return to_text(value)

    def _converter(
        self, field: Field
    ) -> tuple[Callable[[Any], Any] | None, str, Callable[[Any], str]]:
        """(convert, issue code, message for a value that fails) for the field's type."""
        if field.number or field.integer:
            convert = _integer if field.integer else _number(field.decimals)
            noun = "a whole number" if field.integer else "a number"
            return convert, "invalid-number", lambda v: f"{to_text(v)!r} is not {noun}"
        if field.boolean is not None:
            words = {w: True for w in field.boolean.true} | {w: False for w in field.boolean.false}
            listed = (
                f"{', '.join(sorted(field.boolean.true))} (true); "
                f"{', '.join(sorted(field.boolean.false))} (false)"
            )

            def boolean(value: Any) -> Any:
                if value.__class__ is bool:
                    return value
                return words.get(to_text(value).strip().lower(), _FAIL)

            message = f"is not one of the boolean words: {listed}"
            return boolean, "invalid-boolean", lambda v: f"{to_text(v)!r} {message}"
        if field.date or field.format or field.timezone:
            formats = field.date
            if len(formats) == 1:
                tried = f"the format {formats[0]}"
            else:
                tried = f"any of the formats {', '.join(formats)}"
            return (
                _date_converter(field),
                "invalid-date",
                lambda v: f"{to_text(v)!r} is not a date in {tried}",
            )
        return None, "", str


def _text_field(
    idx: int, tx: Callable[[str], str] | None, empty: Callable[[Row, CellValue, list[Issue]], Any]
) -> FieldFn:
    """The common field: a column's text, maybe transformed. Specialised because it is most
    of the fields of most specs."""
    if tx is None:

        def plain(row: Row, values: Values, issues: list[Issue]) -> Any:
            cell = values[idx]
            if cell.__class__ is str:
                if cell and not cell.isspace():
                    return cell
                return empty(row, cell, issues)
            if cell is None:
                return empty(row, cell, issues)
            return to_text(cell)

        return plain

    def transformed(row: Row, values: Values, issues: list[Issue]) -> Any:
        cell = values[idx]
        if cell.__class__ is str:
            value = tx(cell)
        elif cell is None:
            return empty(row, cell, issues)
        else:
            value = tx(to_text(cell))
        if value and not value.isspace():
            return value
        return empty(row, cell, issues)

    return transformed


def _template_field(
    get: Callable[[Values], str],
    tx: Callable[[str], str] | None,
    empty: Callable[[Row, CellValue, list[Issue]], Any],
) -> FieldFn:
    """A template with no map, type or condition: its text, maybe transformed."""

    def templated(row: Row, values: Values, issues: list[Issue]) -> Any:
        cell = get(values)
        value = cell if tx is None else tx(cell)
        if value and not value.isspace():
            return value
        return empty(row, cell, issues)

    return templated


def _number(decimals: int | None) -> Callable[[Any], Any]:
    def number(value: Any) -> Any:
        cls = value.__class__
        if cls is int:
            result: int | float = value
        elif cls is float or cls is Decimal:
            result = float(value)
        elif cls is str:
            text = value.strip()
            if _THOUSANDS.match(text):
                text = text.replace(",", "")
            if "_" in text:  # Python reads 1_000; a spreadsheet user does not mean it
                return _FAIL
            try:
                result = int(text)
            except ValueError:
                try:
                    result = float(text)
                except ValueError:
                    return _FAIL
        else:
            return _FAIL
        if isinstance(result, float):
            if not math.isfinite(result):
                return _FAIL  # JSON has no NaN or Infinity
            if decimals is not None:
                result = round(result, decimals)
            if result.is_integer() and (decimals is None or decimals == 0):
                result = int(result)
        return result

    return number


_plain_number = _number(None)


def _integer(value: Any) -> Any:
    result = _plain_number(value)
    if result is _FAIL or result.__class__ is not int:
        return _FAIL
    return result


def _date_converter(field: Field) -> Callable[[Any], Any]:
    parsers = [(strptime_parser(fmt), has_time(fmt)) for fmt in field.date]
    zone = ZoneInfo(field.timezone) if field.timezone else None
    to_zone = ZoneInfo(field.to_timezone) if field.to_timezone else None
    write = strftime_formatter(field.format) if field.format else None
    parse_text = bool(parsers)
    zoned = zone is not None or to_zone is not None

    def finish(moment: date) -> str:
        if zoned and isinstance(moment, datetime):
            if zone is not None and moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
            if to_zone is not None and moment.tzinfo is not None:
                moment = moment.astimezone(to_zone)
        return write(moment) if write is not None else moment.isoformat()

    def from_text(text: str) -> Any:
        for parse, timed in parsers:
            try:
                moment = parse(text)
            except ValueError:
                continue
            return finish(moment if timed else moment.date())
        if is_numeric_text(text):
            serial = from_excel_serial(float(text))
            if serial is not None:
                return finish(serial)
        return _FAIL

    cache: dict[str, Any] = {}

    def convert(value: Any) -> Any:
        cls = value.__class__
        if cls is str:
            if not parse_text:  # format without date: text passes through
                return value
            out = cache.get(value, _MISS)
            if out is _MISS:
                out = from_text(value.strip())
                if len(cache) >= _CACHE_SIZE:
                    cache.clear()  # bounded; a cleared cache refills with the common values
                cache[value] = out
            return out
        if cls is datetime or cls is date:
            return finish(value)
        if (cls is int or cls is float) and parse_text:
            serial = from_excel_serial(value)
            return _FAIL if serial is None else finish(serial)
        return _FAIL if parse_text else to_text(value)

    return convert


__all__ = ["Mapped", "Mapper", "MissingColumns", "StepRef"]
