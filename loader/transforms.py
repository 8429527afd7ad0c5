"""Value-level building blocks of a mapping: named text transforms and value conversions.

Transforms are small pure functions `str -> str`, looked up by name in one table
(`SIMPLE` for the bare names, `PARAMETRIZED` for the ones that take options). A spec
names them; `make()` builds the function once, when a mapping is compiled, so that no
option is looked up and no regex is compiled per row.

Conversions turn cell values into payload values: `to_text` is the default output
(iCasework takes flat text), and `date_parser` is the fast, cached date parser.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

TextFn = Callable[[str], str]


_NON_DIGITS = re.compile(r"\D+")


def _digits(text: str) -> str:
    return _NON_DIGITS.sub("", text)


def _collapse_spaces(text: str) -> str:
    # str.split() and the regex \s agree on what whitespace is (Py_UNICODE_ISSPACE), so
    # this is `re.sub(r"\s+", " ", text).strip()`, at a third of the cost.
    return " ".join(text.split())


SIMPLE: dict[str, TextFn] = {
    "strip": str.strip,
    "lower": str.lower,
    "upper": str.upper,
    "title": str.title,
    "collapse_spaces": _collapse_spaces,
    "digits": _digits,
}


def _truncate(length: int) -> TextFn:
    return lambda text: text[:length]


def _replace(old: str, new: str) -> TextFn:
    return lambda text: text.replace(old, new)


def _regex_replace(pattern: str, replacement: str) -> TextFn:
    # Compiled once here; re.error surfaces at spec load time (see `make`).
    sub = re.compile(pattern).sub
    return lambda text: sub(replacement, text)


def _split(sep: str, take: int) -> TextFn:
    def split(text: str) -> str:
        parts = text.split(sep)
        # Out of range gives empty, never an error: short values are data, not bugs.
        return parts[take] if -len(parts) <= take < len(parts) else ""

    return split


def _pad_left(width: int, char: str = "0") -> TextFn:
    return lambda text: text.rjust(width, char)


# name -> factory taking the options in the order `Transform.args` holds them
PARAMETRIZED: dict[str, Callable[..., TextFn]] = {
    "truncate": _truncate,
    "replace": _replace,
    "regex_replace": _regex_replace,
    "split": _split,
    "pad_left": _pad_left,
}

NAMES: tuple[str, ...] = (*SIMPLE, *PARAMETRIZED)


@dataclass(frozen=True, slots=True)
class Transform:
    """A transform as a spec names it: `strip` is Transform("strip"), `{truncate: 5}` is
    Transform("truncate", (5,)), `{split: {sep: ",", take: 0}}` is Transform("split", (",", 0))."""

    name: str
    args: tuple[Any, ...] = ()

    def __str__(self) -> str:
        if not self.args:
            return self.name
        return f"{self.name}({', '.join(repr(a) for a in self.args)})"


def make(transform: Transform) -> TextFn:
    """The function for a transform. Raises ValueError for an unknown name or bad options
    (a regex that does not compile), which the spec loader reports with the spec line."""
    if transform.name in SIMPLE and not transform.args:
        return SIMPLE[transform.name]
    factory = PARAMETRIZED.get(transform.name)
    if factory is None:
        raise ValueError(
            f"unknown transform '{transform.name}'; valid transforms: {', '.join(NAMES)}"
        )
    try:
        return factory(*transform.args)
    except re.error as exc:
        raise ValueError(f"bad regular expression {transform.args[0]!r}: {exc}") from exc


def chain(transforms: tuple[Transform, ...]) -> TextFn | None:
    """One function applying every transform in order; None when there are none."""
    fns = [make(t) for t in transforms]
    if not fns:
        return None
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:  # the common [strip, lower]: one call less per value
        first, second = fns
        return lambda text: second(first(text))

    def run(text: str) -> str:
        for fn in fns:
            text = fn(text)
        return text

    return run


# --- conversions -----------------------------------------------------------------------


def to_text(value: Any) -> str:
    """The payload text of a cell value: int -> '123', integral float -> '123' (never
    '123.0'), other floats -> shortest round-tripping text, bool -> 'true'/'false',
    dates and times -> ISO 8601."""
    cls = value.__class__
    if cls is str:
        return value
    if cls is int:
        return str(value)
    if cls is bool:
        return "true" if value else "false"
    if cls is float:
        return str(int(value)) if value.is_integer() else format(value, ".15g")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(int(value)) if value == value.to_integral_value() else format(value, "f")
    if value is None:
        return ""
    return str(value)


# Excel counts days from 1899-12-30 (that base absorbs its 1900 leap-year bug for every
# serial from 61 = 1900-03-01 on, which is every date a case system holds).
_EXCEL_EPOCH = datetime(1899, 12, 30)
_EXCEL_MAX = 2958465  # 9999-12-31
_NUMERIC = re.compile(r"^\d+(\.\d+)?$")


def from_excel_serial(serial: float) -> date | datetime | None:
    """An Excel serial day number as a date (whole days) or datetime; None out of range."""
    if not 1 <= serial <= _EXCEL_MAX:
        return None
    moment = _EXCEL_EPOCH + timedelta(days=serial)
    if float(serial).is_integer():
        return moment.date()
    # Serial fractions are float noise: round to the second Excel shows.
    return (moment + timedelta(microseconds=500_000)).replace(microsecond=0)


_TIME_DIRECTIVES = frozenset("HIMSfpXcz")
# Directives the fast path handles, as regex groups. strptime accepts one or two digits
# for all of these but %Y, and treats whitespace in the format as "one or more spaces".
_FAST = {"d": r"(\d{1,2})", "m": r"(\d{1,2})", "Y": r"(\d{4})", "H": r"(\d{1,2})",
         "M": r"(\d{1,2})", "S": r"(\d{1,2})"}  # fmt: skip
_ORDER = "YmdHMS"


def has_time(fmt: str) -> bool:
    """True when a strptime format reads a time of day, so its result is a datetime."""
    return any(d in _TIME_DIRECTIVES for d in re.findall(r"%(.)", fmt))


def _fast_parser(fmt: str) -> Callable[[str], datetime] | None:
    """A regex-based parser equivalent to strptime for formats made of %d %m %Y %H %M %S
    and literal separators (strptime is two thirds of a naive mapper's time); None when
    the format needs strptime."""
    pattern, slots = "", []
    tokens = re.findall(r"%.|\s+|[^%\s]+", fmt)
    for token in tokens:
        if token.startswith("%"):
            directive = token[1]
            if directive not in _FAST or directive in slots:
                return None
            pattern += _FAST[directive]
            slots.append(directive)
        elif token.isspace():
            pattern += r"\s+"
        else:
            pattern += re.escape(token)
    present = [d for d in _ORDER if d in slots]
    # datetime() takes its parts positionally: the format must give a prefix of YmdHMS.
    if len(present) < 3 or present != list(_ORDER[: len(present)]):
        return None
    match = re.compile(pattern + r"\Z").match
    order = [slots.index(d) + 1 for d in present]

    def parse(text: str) -> datetime:
        found = match(text)
        if found is None:
            raise ValueError(text)
        # Missing time parts are zero, as strptime leaves them.
        p = [int(part) for part in found.group(*order)] + [0, 0, 0]
        return datetime(p[0], p[1], p[2], p[3], p[4], p[5])

    return parse


def strptime_parser(fmt: str) -> Callable[[str], datetime]:
    """The fastest parser equivalent to `datetime.strptime(text, fmt)` (ValueError on
    no match or an impossible date such as 31/02)."""
    fast = _fast_parser(fmt)
    if fast is not None:
        return fast
    return lambda text: datetime.strptime(text, fmt)


# strftime directives the fast formatter writes itself, as str.format fields of the moment.
_FIELDS = {"Y": "{0.year}", "m": "{0.month:02d}", "d": "{0.day:02d}", "H": "{0.hour:02d}",
           "M": "{0.minute:02d}", "S": "{0.second:02d}", "%": "%"}  # fmt: skip
_CLOCK = frozenset("HMS")


def strftime_formatter(fmt: str) -> Callable[[date], str]:
    """The fastest function equal to `moment.strftime(fmt)` for dates and datetimes.

    Formats made of %Y %m %d %H %M %S %% and literal text are written with one str.format
    call (strftime costs several times as much). Years before 1000, whose %Y the C library
    writes its own way, and dates formatted with clock directives go to strftime."""
    parts = re.findall(r"%.|[^%]+|%$", fmt)
    directives = {part[1] for part in parts if len(part) == 2 and part[0] == "%"}
    if not directives <= _FIELDS.keys() or "%" in [p for p in parts if len(p) == 1]:
        return lambda moment: moment.strftime(fmt)
    template = "".join(
        _FIELDS[part[1]]
        if len(part) == 2 and part[0] == "%"
        else part.replace("{", "{{").replace("}", "}}")
        for part in parts
    )
    clock = bool(directives & _CLOCK)

    def format_moment(moment: date) -> str:
        if moment.year < 1000 or (clock and moment.__class__ is not datetime):
            return moment.strftime(fmt)
        return template.format(moment)

    return format_moment


def is_numeric_text(text: str) -> bool:
    return _NUMERIC.match(text) is not None
