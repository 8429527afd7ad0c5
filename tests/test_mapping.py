# ruff: noqa: E501  -- the case tables read best with one spec snippet per line
import hashlib
import textwrap
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from loader.mapping import Mapper, MissingColumns, StepRef
from loader.sources import Row
from loader.spec import Spec, load_spec

DATA = Path(__file__).parent / "data" / "specs"
HEADER = ["Ref", "A", "B", "C"]


def make_spec(folder: Path, fields: str, *, key: str = "key: Ref", when: str = "") -> Spec:
    text = (
        "spec: 1\nname: t\n"
        f"source: {{file: people.csv, {key}}}\n"
        "steps:\n  - id: case\n    operation: createcase\n"
        + (f"    when: {when}\n" if when else "")
        + "    fields:\n"
        + textwrap.indent(textwrap.dedent(fields), "      ")
    )
    path = folder / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return load_spec(path)


def map_one(folder: Path, fields: str, values: list[Any], **kwargs: Any) -> tuple[dict, list]:
    mapper = Mapper(make_spec(folder, fields, **kwargs), HEADER, sheet="S")
    mapped = mapper.map_row(Row(5, ["R1", *values]))
    return mapped.payloads.get("case", {}), [(i.code, i.column, i.message) for i in mapped.issues]


CONVERSIONS = [
    ("text as is", "{from: A}", " Bob ", " Bob "),
    ("int", "{from: A}", 123, "123"),
    ("integral float", "{from: A}", 7700900123.0, "7700900123"),
    ("other float", "{from: A}", 0.1 + 0.2, "0.3"),
    ("bool", "{from: A}", True, "true"),
    ("date", "{from: A}", date(2024, 3, 1), "2024-03-01"),
    ("datetime", "{from: A}", datetime(2024, 3, 1, 10, 20, 15), "2024-03-01T10:20:15"),
    ("datetime with format", '{from: A, format: "%d/%m/%Y"}', datetime(2024, 3, 1, 10), "01/03/2024"),
    ("number text", "{from: A, number: true}", " 12 ", 12),
    ("number float text", "{from: A, number: true}", "12.5", 12.5),
    ("number thousands", "{from: A, number: true}", "1,234.5", 1234.5),
    ("number decimals", "{from: A, number: {decimals: 2}}", "3.14159", 3.14),
    ("number decimals 0", "{from: A, number: {decimals: 0}}", 2.6, 3),
    ("number cell", "{from: A, number: true}", 12.0, 12),
    ("integer text", "{from: A, integer: true}", "42", 42),
    ("integer float cell", "{from: A, integer: true}", 42.0, 42),
    ("boolean default words", "{from: A, boolean: true}", "Yes", True),
    ("boolean cell", "{from: A, boolean: true}", False, False),
    ("boolean own words", "{from: A, boolean: {true: [Y, Ja], false: [N, Nein]}}", " ja ", True),
    ("boolean own words false", "{from: A, boolean: {true: [Y, 1], false: [N, 0]}}", 0, False),
    ("empty omitted", "{from: A}", "  ", None),
    ("None omitted", "{from: A}", None, None),
    ("empty default", "{from: A, default: Phone}", "", "Phone"),
    ("number default", "{from: A, number: true, default: 0}", None, 0),
    ("transformed to empty", "{from: A, transform: [digits]}", "n/a", None),
    ("constant", "{value: Complaint}", "x", "Complaint"),
    ("constant number", "{value: 5}", "x", "5"),
    ("constant typed", "{value: 5, integer: true}", "x", 5),
    ("from_step", "{from_step: account}", "x", "STEPREF"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("field", "cell", "expected"), [c[1:] for c in CONVERSIONS], ids=[c[0] for c in CONVERSIONS]
)
def test_conversion(tmp_path: Path, field: str, cell: Any, expected: Any) -> None:
    if expected == "STEPREF":
        text = (
            "spec: 1\nname: t\nsource: {file: p.csv, key: Ref}\nsteps:\n"
            "  - {id: account, operation: createaccount, fields: {Type: {value: CTAX}}}\n"
            f"  - {{id: case, operation: createcase, fields: {{F: {field}}}}}\n"
        )
        (tmp_path / "s.yaml").write_text(text, encoding="utf-8")
        mapper = Mapper(load_spec(tmp_path / "s.yaml"), HEADER)
        mapped = mapper.map_row(Row(2, ["R1", cell, None, None]))
        assert mapped.payloads == {"account": {"Type": "CTAX"}, "case": {"F": StepRef("account")}}
        return
    payload, issues = map_one(tmp_path, f"F: {field}\n", [cell, None, None])
    assert issues == []
    assert payload == ({} if expected is None else {"F": expected})
    if expected is not None:
        assert type(payload["F"]) is type(expected)


FAILURES = [
    ("required empty", "{from: A, required: true}", " ",
     "missing-value", 'F is required but column "A" is empty; fill it in or give a default'),
    ("bad number", "{from: A, number: true}", "12abc", "invalid-number", "'12abc' is not a number"),
    ("underscore number", "{from: A, number: true}", "1_000", "invalid-number", "'1_000' is not a number"),
    ("nan", "{from: A, number: true}", "nan", "invalid-number", "'nan' is not a number"),
    ("bad integer", "{from: A, integer: true}", "12.5", "invalid-number", "'12.5' is not a whole number"),
    ("bad boolean", "{from: A, boolean: {true: [Y, Yes, 1], false: [N, No, 0]}}", "Maybe",
     "invalid-boolean", "'Maybe' is not one of the boolean words: 1, y, yes (true); 0, n, no (false)"),
    ("bad date", '{from: A, date: ["%d/%m/%Y %H:%M", "%d/%m/%Y"]}', "31/02/2021",
     "invalid-date", "'31/02/2021' is not a date in any of the formats %d/%m/%Y %H:%M, %d/%m/%Y"),
    ("bad date one format", '{from: A, date: "%Y-%m-%d"}', "2021/02/01",
     "invalid-date", "'2021/02/01' is not a date in the format %Y-%m-%d"),
    ("bool cell as date", '{from: A, date: "%Y-%m-%d"}', True,
     "invalid-date", "'true' is not a date in the format %Y-%m-%d"),
    ("unmapped", "{from: A, map: {TEL: Phone, EML: Email, WEB: Web}}", "FAX",
     "unmapped-value", "'FAX' is not in the map of F (codes: EML, TEL, WEB)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("field", "cell", "code", "message"), [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES]
)
def test_failure_is_an_issue_and_the_field_is_left_out(
    tmp_path: Path, field: str, cell: Any, code: str, message: str
) -> None:
    spec = make_spec(tmp_path, f"F: {field}\n")
    mapped = Mapper(spec, HEADER, sheet="Complaints").map_row(Row(27, ["R1", cell, None, None]))
    assert mapped.payloads == {"case": {}}
    (issue,) = mapped.issues
    assert (issue.code, issue.message) == (code, message)
    assert (issue.row, issue.sheet, issue.column, issue.column_number) == (27, "Complaints", "A", 2)
    assert (issue.field, issue.step, issue.cell) == ("F", "case", "B27")
    assert issue.value == ("true" if cell is True else cell)


DATES = [
    ("first format wins", '["%d/%m/%Y %H:%M", "%d/%m/%Y"]', "", "01/03/2024 10:05", "2024-03-01T10:05:00"),
    ("second format, date only", '["%d/%m/%Y %H:%M", "%d/%m/%Y"]', "", "1/3/2024", "2024-03-01"),
    ("US dates", '"%m/%d/%Y"', ', format: "%Y-%m-%d"', "8/30/2013", "2013-08-30"),
    ("strptime fallback", '"%d %b %Y"', "", "01 Mar 2024", "2024-03-01"),
    ("xlsx datetime", '"%d/%m/%Y"', "", datetime(2024, 3, 1, 9), "2024-03-01T09:00:00"),
    ("excel serial", '"%d/%m/%Y"', "", 45352, "2024-03-01"),
    ("excel serial with time", '"%d/%m/%Y"', "", 45352.75, "2024-03-01T18:00:00"),
    ("excel serial as text", '"%d/%m/%Y"', "", "45352", "2024-03-01"),
    ("format", '"%d/%m/%Y %H:%M"', ', format: "%Y-%m-%dT%H:%M:%S"', "01/03/2024 10:05", "2024-03-01T10:05:00"),
    ("time zone", '"%d/%m/%Y %H:%M"', ", timezone: Europe/London", "01/07/2024 10:05", "2024-07-01T10:05:00+01:00"),
    ("to UTC", '"%d/%m/%Y %H:%M"', ", timezone: Europe/London, to_timezone: UTC", "01/07/2024 10:05", "2024-07-01T09:05:00+00:00"),
    ("to UTC in winter", '"%d/%m/%Y %H:%M"', ', timezone: Europe/London, to_timezone: UTC, format: "%Y-%m-%d %H:%M"', "01/01/2024 10:05", "2024-01-01 10:05"),
    ("zone with offset in text", '"%Y-%m-%dT%H:%M%z"', ", timezone: UTC, to_timezone: Europe/London", "2024-07-01T10:05+0000", "2024-07-01T11:05:00+01:00"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("formats", "extra", "cell", "expected"), [d[1:] for d in DATES], ids=[d[0] for d in DATES]
)
def test_dates(tmp_path: Path, formats: str, extra: str, cell: Any, expected: str) -> None:
    payload, issues = map_one(tmp_path, f"F: {{from: A, date: {formats}{extra}}}\n", [cell, 0, 0])
    assert issues == []
    assert payload == {"F": expected}


def test_date_cache_gives_the_same_answers(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, 'F: {from: A, date: "%d/%m/%Y", format: "%Y%m%d"}\n')
    mapper = Mapper(spec, HEADER)
    for _ in range(3):
        good = mapper.map_row(Row(2, ["R", "02/01/2020", None, None]))
        bad = mapper.map_row(Row(3, ["R", "32/01/2020", None, None]))
        assert good.payloads == {"case": {"F": "20200102"}}
        assert [i.code for i in bad.issues] == ["invalid-date"]


def test_look_up_file_and_on_unmapped(tmp_path: Path) -> None:
    (tmp_path / "channels.csv").write_text("Code,Method\nTEL,Phone\nWEB,Web\n", encoding="utf-8")
    fields = """\
        Keep: {from: A, map_file: {file: channels.csv, key: Code, value: Method}, on_unmapped: keep}
        Default:
          from: A
          map: {MP: Email}
          map_file: {file: channels.csv, key: Code, value: Method}
          on_unmapped: default
          default: Letter
        Upper: {from: A, transform: [strip, upper], map: {WEB: Web}}
    """
    cases = [
        ("TEL", {"Keep": "Phone", "Default": "Phone"}, ["unmapped-value"]),
        ("MP", {"Keep": "MP", "Default": "Email"}, ["unmapped-value"]),
        ("XX", {"Keep": "XX", "Default": "Letter"}, ["unmapped-value"]),
        (" web ", {"Keep": " web ", "Default": "Letter", "Upper": "Web"}, []),
        ("", {"Default": "Letter"}, []),
    ]
    mapper = Mapper(make_spec(tmp_path, fields), HEADER)
    for cell, payload, codes in cases:
        mapped = mapper.map_row(Row(2, ["R", cell, None, None]))
        assert mapped.payloads == {"case": payload}, cell
        assert [i.code for i in mapped.issues] == codes, cell


def test_unmapped_lists_a_few_codes(tmp_path: Path) -> None:
    codes = ", ".join(f"C{n:02d}: V" for n in range(20))
    _, issues = map_one(tmp_path, f"F: {{from: A, map: {{{codes}}}}}\n", ["X", 0, 0])
    assert issues == [
        ("unmapped-value", "A",
         "'X' is not in the map of F (codes: C00, C01, C02, C03, C04, C05, C06, C07, ...)"),
    ]  # fmt: skip


CONDITIONS = [
    ("{column: B, equals: WEB}", [" WEB ", "TEL", None]),
    ("{column: B, equals: 1}", [1, "1", 1.0, "2"]),
    ("{column: B, in: [TEL, EML]}", ["TEL", "EML", "WEB"]),
    ("{column: B, not_empty: true}", ["x", " ", None, 0]),
    ("{column: B, empty: true}", ["x", " ", None]),
    ("{column: B, empty: false}", ["x", " "]),
    ('{column: B, matches: "^A\\\\d+$"}', ["A12", "A1x", "B1"]),
    ("{not: {column: B, equals: X}}", ["X", "Y"]),
    ("{all: [{column: B, not_empty: true}, {column: C, equals: Y}]}", [("x", "Y"), ("x", "N"), (None, "Y")]),
    ("{any: [{column: B, equals: X}, {column: C, equals: Y}]}", [("X", "N"), ("N", "Y"), ("N", "N")]),
]  # fmt: skip
EXPECTED = [
    [True, False, False],
    [True, True, True, False],
    [True, True, False],
    [True, False, False, True],
    [False, True, True],
    [True, False],
    [True, False, False],
    [False, True],
    [True, False, False],
    [True, True, False],
]


@pytest.mark.parametrize(
    ("condition", "cells", "expected"), [(*c, e) for c, e in zip(CONDITIONS, EXPECTED, strict=True)]
)
def test_conditions_on_fields_and_steps(
    tmp_path: Path, condition: str, cells: list[Any], expected: list[bool]
) -> None:
    field_spec = make_spec(tmp_path, f"F: {{value: yes, when: {condition}}}\n")
    field_mapper = Mapper(field_spec, HEADER)
    step_mapper = Mapper(make_spec(tmp_path, "F: {value: yes}\n", when=condition), HEADER)
    for cell, want in zip(cells, expected, strict=True):
        b, c = cell if isinstance(cell, tuple) else (cell, None)
        row = Row(2, ["R", None, b, c])
        assert ("F" in field_mapper.map_row(row).payloads["case"]) is want, cell
        assert ("case" in step_mapper.map_row(row).payloads) is want, cell


@pytest.mark.parametrize(
    ("template", "cells", "expected"),
    [
        ('"{A}\\n\\nLegacy reference: {Ref}"', ["Noise", 1, 2], "Noise\n\nLegacy reference: R1"),
        ('"{A} - {B}"', ["x", None, 2], "x - "),
        ('"{A}/{B}/{C}"', [12.0, True, date(2024, 3, 1)], "12/true/2024-03-01"),
        ('"{{literal}} {A}"', ["x", None, None], "{literal} x"),
        ('"no columns"', [None, None, None], "no columns"),
    ],
)
def test_templates(tmp_path: Path, template: str, cells: list[Any], expected: str) -> None:
    payload, issues = map_one(tmp_path, f"F: {{template: {template}}}\n", cells)
    assert (payload, issues) == ({"F": expected}, [])


def test_template_transforms_and_required(tmp_path: Path) -> None:
    fields = 'F: {template: "{A} {B}", transform: [strip, {truncate: 4}], required: true}\n'
    assert map_one(tmp_path, fields, ["abc", "def", None]) == ({"F": "abc "}, [])
    assert map_one(tmp_path, fields, [None, " ", None]) == (
        {},
        [
            (
                "missing-value",
                "A",
                "F is required but its template is empty; fill it in or give a default",
            )
        ],
    )


def test_keys(tmp_path: Path) -> None:
    one = Mapper(make_spec(tmp_path, "F: {value: 1}\n", key="key: Ref"), HEADER)
    assert one.key_of(Row(2, [" R1 ", None, None, None])) == "R1"
    assert one.key_of(Row(2, [1234.0, None, None, None])) == "1234"
    two = Mapper(make_spec(tmp_path, "F: {value: 1}\n", key="key: [Ref, A]"), HEADER, sheet="S")
    assert two.key_of(Row(2, ["R1", "x", None, None])) == "R1|x"
    mapped = two.map_row(Row(9, ["R1", " ", None, None]))
    assert mapped.key == "R1|"
    assert [(i.code, i.message, i.cell) for i in mapped.issues] == [
        (
            "missing-key",
            'key column "A" is empty; every row needs a key so that the ledger can track it',
            "B9",
        )
    ]
    none = Mapper(make_spec(tmp_path, "F: {value: 1}\n", key="sheet: S"), HEADER)
    values = ["R1", "x", None, 3]
    digest = hashlib.sha1(b"R1\x1fx\x1f\x1f3").hexdigest()[:12]
    assert none.key_of(Row(7, values)) == f"row-7-{digest}"
    assert none.map_row(Row(7, values)).key == f"row-7-{digest}"


def test_short_row_is_padded(tmp_path: Path) -> None:
    payload, issues = map_one(tmp_path, "F: {from: C, required: true}\n", [])
    assert payload == {}
    assert [code for code, _, _ in issues] == ["missing-value"]


def test_missing_columns_name_every_column_with_its_spec_line() -> None:
    spec = load_spec(DATA / "design.yaml")
    header = ["LegacyRef", "Recieved", "Channel", "Surname", "Emial", "Summary"]
    with pytest.raises(MissingColumns) as info:
        Mapper(spec, header, sheet="Complaints")
    columns = "(columns: LegacyRef, Recieved, Channel, Surname, Emial, Summary)"
    assert [(p.line, p.path, p.message) for p in info.value.problems] == [
        (16, "steps[0].fields.RequestDate.from",
         f'column "Received" not found in complaints.xlsx; did you mean "Recieved"? {columns}'),
        (19, "steps[0].fields.Customer.Email.from",
         f'column "Email" not found in complaints.xlsx; did you mean "Emial"? {columns}'),
    ]  # fmt: skip
    assert all(p.file == str(DATA / "design.yaml") for p in info.value.problems)
    assert [(i.code, i.column, i.field, i.step, i.sheet) for i in info.value.issues] == [
        ("missing-column", "Received", "RequestDate", "case", "Complaints"),
        ("missing-column", "Email", "Customer.Email", "case", "Complaints"),
    ]


def test_design_example_maps_a_row_and_traces_origins() -> None:
    spec = load_spec(DATA / "design.yaml")
    header = ["LegacyRef", "Received", "Channel", "Surname", "Email", "Summary"]
    mapper = Mapper(spec, header, sheet="Complaints")
    assert mapper.steps == ("case",)
    row = Row(27, ["L-1", "01/03/2024 10:05", "EML", "O'Brien", " Bob@X.COM ", "Noisy bins"])
    mapped = mapper.map_row(row)
    assert mapped.key == "L-1"
    assert mapped.issues == []
    assert mapped.payloads == {
        "case": {
            "Type": "Complaint",
            "ExternalId": "L-1",
            "RequestDate": "2024-03-01T10:05:00",
            "RequestMethod": "Email",
            "Customer.Surname": "O'Brien",
            "Customer.Email": "bob@x.com",
            "Details": "Noisy bins\n\nLegacy reference: L-1",
        }
    }
    assert mapper.origin("case", "Customer.Email") == ("Email", 5)
    assert mapper.origin("case", "Details") == ("Summary", 6)
    assert mapper.origin("case", "Type") == (None, None)
    assert mapper.origin("case", "Nope") == (None, None)


def test_header_label_with_stray_spaces_still_matches(tmp_path: Path) -> None:
    mapper = Mapper(make_spec(tmp_path, "F: {from: A}\n"), ["Ref", " A "])
    assert mapper.map_row(Row(2, ["R", "x"])).payloads == {"case": {"F": "x"}}
    assert mapper.origin("case", "F") == ("A", 2)
