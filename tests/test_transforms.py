import json
from datetime import date, datetime, time
from decimal import Decimal

import pytest

from loader.resources import schema_path
from loader.transforms import (
    NAMES,
    SIMPLE,
    Transform,
    chain,
    from_excel_serial,
    has_time,
    make,
    strftime_formatter,
    strptime_parser,
    to_text,
)


@pytest.mark.parametrize(
    ("transform", "text", "expected"),
    [
        (Transform("strip"), "  a b  ", "a b"),
        (Transform("lower"), "Bob@X.COM", "bob@x.com"),
        (Transform("upper"), "lc-1", "LC-1"),
        (Transform("title"), "mrs o'brien", "Mrs O'Brien"),
        (Transform("collapse_spaces"), "  12   High \t Street ", "12 High Street"),
        (Transform("digits"), "0161 496-0000", "01614960000"),
        (Transform("digits"), "none", ""),
        (Transform("truncate", (5,)), "abcdefgh", "abcde"),
        (Transform("truncate", (5,)), "abc", "abc"),
        (Transform("replace", ("-", "/")), "2024-03-01", "2024/03/01"),
        (Transform("regex_replace", (r"^(\w+)-(\d+)$", r"\2-\1")), "CTAX-12", "12-CTAX"),
        (Transform("split", (",", 0)), "a,b,c", "a"),
        (Transform("split", (",", -1)), "a,b,c", "c"),
        (Transform("split", (",", 5)), "a,b,c", ""),
        (Transform("split", (",", -4)), "a,b,c", ""),
        (Transform("pad_left", (5, "0")), "2921", "02921"),
        (Transform("pad_left", (5, "0")), "123456", "123456"),
        (Transform("pad_left", (11,)), "7700900123", "07700900123"),
    ],
)
def test_transform(transform: Transform, text: str, expected: str) -> None:
    assert make(transform)(text) == expected


def test_chain_applies_in_order() -> None:
    fn = chain((Transform("strip"), Transform("lower"), Transform("truncate", (3,))))
    assert fn is not None
    assert fn("  ABCDEF ") == "abc"
    assert chain(()) is None


@pytest.mark.parametrize(
    ("transform", "message"),
    [
        (Transform("nope"), "unknown transform 'nope'; valid transforms: " + ", ".join(NAMES)),
        (
            Transform("regex_replace", ("(", "")),
            "bad regular expression '(': missing ), unterminated subpattern at position 0",
        ),
    ],
)
def test_make_refuses(transform: Transform, message: str) -> None:
    with pytest.raises(ValueError) as info:
        make(transform)
    assert str(info.value) == message


def test_schema_lists_the_same_transforms() -> None:
    schema = json.loads(schema_path("spec.schema.json").read_text(encoding="utf-8"))
    transform = schema["$defs"]["transform"]
    assert transform["then"]["enum"] == list(SIMPLE)
    assert set(transform["else"]["properties"]) == set(NAMES) - set(SIMPLE)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("as is ", "as is "),
        (123, "123"),
        (123.0, "123"),
        (-0.5, "-0.5"),
        (0.1 + 0.2, "0.3"),
        (1e20, "100000000000000000000"),
        (True, "true"),
        (False, "false"),
        (date(2024, 3, 1), "2024-03-01"),
        (datetime(2024, 3, 1, 10, 20, 15), "2024-03-01T10:20:15"),
        (time(9, 30), "09:30:00"),
        (Decimal("12.50"), "12.50"),
        (Decimal("12.0"), "12"),
        (None, ""),
    ],
)
def test_to_text(value: object, expected: str) -> None:
    assert to_text(value) == expected


@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        (45352, date(2024, 3, 1)),
        (45352.5, datetime(2024, 3, 1, 12, 0)),
        (61, date(1900, 3, 1)),
        (0, None),
        (3_000_000, None),
    ],
)
def test_from_excel_serial(serial: float, expected: object) -> None:
    assert from_excel_serial(serial) == expected


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("%d/%m/%Y", "01/03/2024"),
        ("%d/%m/%Y", "1/3/2024"),
        ("%m/%d/%Y", "8/30/2013"),
        ("%Y-%m-%d", "2024-03-01"),
        ("%d/%m/%Y %H:%M", "01/03/2024 10:05"),
        ("%d/%m/%Y %H:%M", "01/03/2024   10:05"),
        ("%Y-%m-%dT%H:%M:%S", "2024-03-01T10:05:59"),
        ("%d %b %Y", "01 Mar 2024"),  # not on the fast path: strptime
        ("%d/%m/%y", "01/03/24"),
    ],
)
def test_date_parser_agrees_with_strptime(fmt: str, text: str) -> None:
    assert strptime_parser(fmt)(text) == datetime.strptime(text, fmt)


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("%d/%m/%Y", "31/02/2021"),
        ("%d/%m/%Y", "2021-02-01"),
        ("%d/%m/%Y", "01/03/2024 10:00"),
        ("%Y-%m-%d", "2024-13-01"),
        ("%d/%m/%Y %H:%M", "01/03/2024 25:00"),
        ("%d/%m/%Y", ""),
    ],
)
def test_date_parser_refuses_what_strptime_refuses(fmt: str, text: str) -> None:
    with pytest.raises(ValueError):
        datetime.strptime(text, fmt)
    with pytest.raises(ValueError):
        strptime_parser(fmt)(text)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("%d/%m/%Y", False), ("%d/%m/%Y %H:%M", True), ("%Y-%m-%dT%H:%M:%S%z", True)],
)
def test_has_time(fmt: str, expected: bool) -> None:
    assert has_time(fmt) is expected


@pytest.mark.parametrize(
    "fmt",
    ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d", "%d/%m/%Y %H:%M", "{%Y} %% {}", "%", "%Y%", "x%qy",
     "%A %d %B %Y", "%H:%M", ""],
)  # fmt: skip
@pytest.mark.parametrize(
    "moment",
    [datetime(2021, 3, 4, 5, 6, 7), date(2020, 1, 2), datetime(999, 1, 1, 23, 59),
     date(5, 6, 7), datetime(2024, 2, 29, 0, 0, 1, 999_999)],
)  # fmt: skip
def test_strftime_formatter_agrees_with_strftime(fmt: str, moment: date) -> None:
    assert strftime_formatter(fmt)(moment) == moment.strftime(fmt)
