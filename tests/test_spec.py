import hashlib
import json
import textwrap
from pathlib import Path

import pytest

from loader import resources
from loader.errors import SpecError
from loader.spec import (
    NO_KEY_WARNING,
    AllOf,
    AnyOf,
    ColumnTest,
    Not,
    load_spec,
    parse_template,
)
from loader.transforms import NAMES, Transform

VALID = ", ".join(NAMES)

DATA = Path(__file__).parent / "data" / "specs"

HEAD = """\
spec: 1
name: t
source: {file: people.csv, key: Ref}
steps:
"""


def write(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(folder: Path, text: str) -> list[tuple[int | None, int | None, str, str]]:
    with pytest.raises(SpecError) as info:
        load_spec(write(folder, text))
    return [(p.line, p.column, p.path, p.message) for p in info.value.problems]


def test_design_example_loads_unchanged() -> None:
    spec = load_spec(DATA / "design.yaml")
    assert spec.name == "legacy-complaints"
    assert spec.version == 1
    assert spec.target == "icasework"
    assert spec.source.file == (DATA / "../samples/complaints.xlsx").resolve()
    assert (spec.source.sheet, spec.source.header_row, spec.source.key) == (
        "Complaints",
        1,
        ("LegacyRef",),
    )
    (step,) = spec.steps
    assert (step.id, step.operation, step.line) == ("case", "createcase", 11)
    names = [f.name for f in step.fields]
    assert names == [
        "Type",
        "ExternalId",
        "RequestDate",
        "RequestMethod",
        "Customer.Surname",
        "Customer.Email",
        "Details",
    ]
    fields = {f.name: f for f in step.fields}
    assert fields["Type"].value == "Complaint"
    assert fields["RequestDate"].date == ("%d/%m/%Y %H:%M", "%d/%m/%Y")
    assert fields["RequestDate"].format == "%Y-%m-%dT%H:%M:%S"
    assert fields["RequestMethod"].map == {"TEL": "Phone", "EML": "Email", "WEB": "Web"}
    assert fields["RequestMethod"].default == "Phone"
    assert fields["Customer.Surname"].required is True
    assert fields["Customer.Email"].transform == (Transform("strip"), Transform("lower"))
    assert fields["Details"].columns == ("Summary", "LegacyRef")
    assert fields["Details"].line == 20
    assert spec.pii_fields("case") == frozenset({"Customer.Email"})
    assert spec.warnings == ()
    assert spec.sha256 == hashlib.sha256((DATA / "design.yaml").read_bytes()).hexdigest()


def test_with_source_replaces_only_the_file(tmp_path: Path) -> None:
    spec = load_spec(DATA / "design.yaml")
    other = spec.with_source(tmp_path / "other.xlsx")
    assert other.source.file == tmp_path / "other.xlsx"
    assert other.source.sheet == "Complaints"
    assert other.steps == spec.steps


def test_warnings(tmp_path: Path) -> None:
    spec = load_spec(
        write(
            tmp_path,
            """\
            spec: 1
            name: t
            source: {file: people.csv}
            steps:
              - id: case
                operation: createcase
                fields: {Type: {value: Complaint}}
            """,
        )
    )
    assert spec.warnings == (
        NO_KEY_WARNING,
        "step case: createcase has no ExternalId; rows in doubt after a crash cannot be looked up",
    )


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.yaml")
    assert str(info.value) == f"spec error:\n  {tmp_path / 'nope.yaml'}: spec file not found"


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "spec: 1\nname: [a\nsource: {}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == (
        f"spec error:\n  {path}:3:7: YAML syntax error: expected ',' or ']', but got ':'"
    )


BAD = [
    (
        "unknown key with suggestion",
        """
          - id: case
            operation: createcase
            fields:
              ExternalId: {from: Ref, defualt: x}
        """,
        [(8, 29, "steps[0].fields.ExternalId.defualt",
          "unknown key 'defualt'; did you mean 'default'?")],
    ),
    (
        "unknown key without a near one",
        """
          - id: case
            operation: createcase
            zzz: 1
            fields: {ExternalId: {from: Ref}}
        """,
        [(7, 3, "steps[0].zzz", "unknown key 'zzz'; valid keys: id, operation, fields, when, "
          "schema, upload_type, description")],
    ),
    (
        "wrong type",
        """
          - id: case
            operation: createcase
            fields:
              ExternalId: {from: [Ref], required: "yes"}
        """,
        [(8, 24, "steps[0].fields.ExternalId.from", "wrong type: expected text, got a list"),
         (8, 41, "steps[0].fields.ExternalId.required",
          "wrong type: expected true or false, got text 'yes'")],
    ),
    (
        "unknown transform",
        """
          - id: case
            operation: createcase
            fields:
              ExternalId: {from: Ref, transform: [strip, lowr]}
        """,
        [(8, 48, "steps[0].fields.ExternalId.transform[1]",
          f"unknown transform 'lowr'; did you mean 'lower'? (valid transforms: {VALID})")],
    ),
    (
        "unknown parametrized transform",
        """
          - id: case
            operation: createcase
            fields:
              ExternalId: {from: Ref, transform: [{trunc: 3}]}
        """,
        [(8, 42, "steps[0].fields.ExternalId.transform[0].trunc",
          f"unknown transform 'trunc'; did you mean 'truncate'? (valid transforms: {VALID})")],
    ),
    (
        "bad regex",
        """
          - id: case
            operation: createcase
            fields:
              ExternalId:
                from: Ref
                transform: [{regex_replace: {pattern: "(", with: ""}}]
                when: {column: Ref, matches: "["}
        """,
        [(10, 19, "steps[0].fields.ExternalId.transform[0]",
          "regex_replace: bad regular expression '(': missing ), unterminated subpattern at "
          "position 0"),
         (11, 36, "steps[0].fields.ExternalId.when.matches",
          "bad regular expression '[': unterminated character set at position 0")],
    ),
    (
        "missing look-up file",
        """
          - id: case
            operation: createcase
            fields:
              ExternalId: {from: Ref}
              RequestMethod:
                from: Channel
                map_file: {file: codes.csv, key: Code, value: Name}
        """,
        [(11, 24, "steps[0].fields.RequestMethod.map_file.file",
          "look-up file codes.csv not found ({codes})")],
    ),
    (
        "from_step naming a later step",
        """
          - id: case
            operation: createcase
            fields:
              ExternalId: {from: Ref}
              ExternalAccountId: {from_step: account}
          - id: account
            operation: createaccount
            fields: {Type: {value: CTAX}}
        """,
        [(9, 36, "steps[0].fields.ExternalAccountId.from_step",
          "from_step 'account' names a later step; a step can only use ids returned by "
          "earlier steps")],
    ),
    (
        "from_step naming no step",
        """
          - id: account
            operation: createaccount
            fields: {Type: {value: CTAX}}
          - id: case
            operation: createcase
            fields:
              ExternalId: {from: Ref}
              ExternalAccountId: {from_step: acount}
        """,
        [(12, 36, "steps[1].fields.ExternalAccountId.from_step",
          "from_step 'acount' names no earlier step; did you mean 'account'? "
          "(earlier steps: account)")],
    ),
    (
        "duplicate step id",
        """
          - id: case
            operation: createcase
            fields: {ExternalId: {from: Ref}}
          - id: case
            operation: createcase
            fields: {ExternalId: {from: Ref}}
        """,
        [(8, 7, "steps[1].id", "duplicate step id 'case'")],
    ),
    (
        "unknown operation",
        """
          - id: case
            operation: createcas
            fields: {ExternalId: {from: Ref}}
        """,
        [(6, 14, "steps[0].operation",
          "unknown operation 'createcas' for target icasework; did you "
          "mean 'createcase'? (operations: createaccount, createcase, updatecustomer)")],
    ),
    (
        "several sources in a field, none in another",
        """
          - id: case
            operation: createcase
            fields:
              ExternalId: {from: Ref, value: x}
              Type: {default: x}
        """,
        [(8, 17, "steps[0].fields.ExternalId",
          "field ExternalId has from and value; give exactly one of "
          "from, value, template, from_step"),
         (9, 11, "steps[0].fields.Type",
          "field Type needs one of from, value, template, from_step"),
         (9, 21, "steps[0].fields.Type.default", "default only goes with from or template")],
    ),
    (
        "bad template",
        """
          - id: case
            operation: createcase
            fields:
              ExternalId: {from: Ref}
              Details: {template: "{Summary} {Ref"}
        """,
        [(9, 25, "steps[0].fields.Details.template",
          "bad template: unclosed '{' at position 10; write '{{' for a literal brace")],
    ),
    (
        "missing required keys",
        """
          - id: case
            fields: {}
        """,
        [(5, 3, "steps[0]", "missing required key 'operation'"),
         (6, 11, "steps[0].fields", "must not be empty")],
    ),
    (
        "bad condition and unknown time zone",
        """
          - id: case
            operation: createcase
            when: {column: A, equals: x, in: [y]}
            fields:
              ExternalId: {from: Ref}
              RequestDate: {from: D, date: "%d/%m/%Y %H:%M", timezone: Europe/Londn}
        """,
        [(7, 9, "steps[0].when", "a condition is {column: X, <test>: ...} with one test of "
          "equals, in, not_empty, empty, matches, or one of all, any, not"),
         (10, 62, "steps[0].fields.RequestDate.timezone",
          "unknown time zone 'Europe/Londn'; did you mean 'Europe/London'?")],
    ),
]  # fmt: skip


@pytest.fixture
def operations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A schema folder of our own, so these tests do not depend on the shipped schemas."""
    folder = tmp_path / "schemas"
    (folder / "icasework").mkdir(parents=True)
    for name in ("createcase", "createaccount", "updatecustomer"):
        (folder / "icasework" / f"{name}.schema.json").write_text("{}", encoding="utf-8")
    (folder / "spec.schema.json").write_bytes(
        resources.schema_path("spec.schema.json").read_bytes()
    )
    monkeypatch.setattr(resources, "SCHEMAS", folder)
    return folder


@pytest.mark.parametrize(("case", "steps", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_spec(
    tmp_path: Path, operations: Path, case: str, steps: str, expected: list[tuple]
) -> None:
    text = HEAD + textwrap.dedent(steps).lstrip("\n")
    codes = (tmp_path / "codes.csv").resolve()
    want = [
        (line, col, path, msg.replace("{codes}", str(codes))) for line, col, path, msg in expected
    ]
    assert problems(tmp_path, text) == want


def test_every_problem_is_reported_once_with_the_file(tmp_path: Path, operations: Path) -> None:
    path = write(tmp_path, HEAD + "  - {id: 1x, operation: createcase, fields: {A: {frm: B}}}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == (
        "2 spec errors:\n"
        f"  {path}:5:10 (steps[0].id): '1x' is not a valid step id: use letters, digits, _ and -, "
        "starting with a letter\n"
        f"  {path}:5:50 (steps[0].fields.A.frm): unknown key 'frm'; did you mean 'from'?"
    )


def test_spec_version(tmp_path: Path) -> None:
    text = (
        "spec: 2\nname: t\nsource: {file: a.csv}\n"
        "steps: [{id: a, operation: createcase, fields: {A: {value: 1}}}]\n"
    )
    assert problems(tmp_path, text) == [
        (1, 7, "spec", "unsupported spec version 2; this loader reads spec: 1")
    ]


def test_look_up_file_is_merged_under_the_inline_map_and_hashed(tmp_path: Path) -> None:
    (tmp_path / "codes.csv").write_text("Code,Name\nTEL,Telephone\nWEB,Web\n", encoding="utf-8")
    path = write(
        tmp_path,
        HEAD
        + """\
  - id: case
    operation: createcase
    fields:
      ExternalId: {from: Ref}
      RequestMethod:
        from: Channel
        map: {TEL: Phone, "1": One, N: "No"}
        map_file: {file: codes.csv, key: Code, value: Name}
        on_unmapped: keep
""",
    )
    spec = load_spec(path)
    field = spec.steps[0].fields[1]
    assert field.map == {"TEL": "Phone", "WEB": "Web", "1": "One", "N": "No"}
    assert field.on_unmapped == "keep"
    expected = hashlib.sha256(path.read_bytes() + (tmp_path / "codes.csv").read_bytes())
    assert spec.sha256 == expected.hexdigest()


def test_look_up_file_without_the_named_column(tmp_path: Path) -> None:
    (tmp_path / "codes.csv").write_text("Code,Nmae\nTEL,Telephone\n", encoding="utf-8")
    text = HEAD + (
        "  - id: case\n    operation: createcase\n    fields:\n"
        "      M: {from: C, map_file: {file: codes.csv, key: Code, value: Name}}\n"
    )
    assert problems(tmp_path, text) == [
        (
            8,
            66,
            "steps[0].fields.M.map_file.value",
            'column "Name" not found in look-up file codes.csv; did you mean "Nmae"? '
            "(columns: Code, Nmae)",
        )
    ]


def test_yaml_1_1_booleans_stay_text(tmp_path: Path) -> None:
    text = HEAD + (
        "  - id: case\n    operation: createcase\n    fields:\n"
        "      ExternalId: {from: Ref}\n"
        "      Flag: {from: F, map: {yes: on, No: off}}\n"
        "      Ok: {from: O, boolean: {true: [Y, Yes, 1], false: [N, No, 0]}}\n"
    )
    spec = load_spec(write(tmp_path, text))
    fields = {f.name: f for f in spec.steps[0].fields}
    assert fields["Flag"].map == {"yes": "on", "No": "off"}
    words = fields["Ok"].boolean
    assert words is not None
    assert (words.true, words.false) == (frozenset({"y", "yes", "1"}), frozenset({"n", "no", "0"}))


def test_conditions_and_columns(tmp_path: Path) -> None:
    text = HEAD + textwrap.dedent(
        """\
          - id: case
            operation: createcase
            when: {any: [{column: Channel, equals: WEB}, {column: Channel, in: [1, TEL]}]}
            fields:
              ExternalId: {from: Ref}
              Email:
                from: Email
                when:
                  all:
                    - {column: Email, not_empty: true}
                    - {not: {column: Email, matches: "^n/a$"}}
                    - {column: Opt, empty: false}
        """
    )
    spec = load_spec(write(tmp_path, text))
    step = spec.steps[0]
    assert step.when == AnyOf(
        (ColumnTest("Channel", "equals", "WEB"), ColumnTest("Channel", "in", ("1", "TEL")))
    )
    email = step.fields[1]
    assert email.when == AllOf(
        (
            ColumnTest("Email", "not_empty"),
            Not(ColumnTest("Email", "matches", "^n/a$")),
            ColumnTest("Opt", "not_empty"),
        )
    )
    assert email.columns == ("Email", "Opt")
    assert [(r.column, r.path, r.line) for r in spec.references] == [
        ("Ref", "source.key", 3),
        ("Channel", "steps[0].when.any[0].column", 7),
        ("Channel", "steps[0].when.any[1].column", 7),
        ("Ref", "steps[0].fields.ExternalId.from", 9),
        ("Email", "steps[0].fields.Email.from", 11),
        ("Email", "steps[0].fields.Email.when.all[0].column", 14),
        ("Email", "steps[0].fields.Email.when.all[1].not.column", 15),
        ("Opt", "steps[0].fields.Email.when.all[2].column", 16),
    ]


def test_operation_schema_checked_against_the_schema_folder(
    tmp_path: Path, operations: Path
) -> None:
    text = HEAD + "  - {id: up, operation: uploaddata, fields: {A: {value: 1}}}\n"
    assert problems(tmp_path, text) == [
        (5, 5, "steps[0]", "operation uploaddata needs upload_type: customers, accounts or cases"),
        (5, 25, "steps[0].operation", "unknown operation 'uploaddata' for target icasework "
         "(operations: createaccount, createcase, updatecustomer)"),
    ]  # fmt: skip
    (operations / "icasework" / "uploaddata.schema.json").write_text("{}", encoding="utf-8")
    assert problems(tmp_path, text) == [
        (5, 5, "steps[0]", "operation uploaddata needs upload_type: customers, accounts or cases")
    ]


def test_overlay_schema_is_resolved_relative_to_the_spec(tmp_path: Path) -> None:
    (tmp_path / "tenant.schema.json").write_text(json.dumps({"type": "object"}), encoding="utf-8")
    text = HEAD + (
        "  - {id: c, operation: createcase, schema: tenant.schema.json, "
        "fields: {ExternalId: {from: Ref}}}\n"
    )
    spec = load_spec(write(tmp_path, text))
    assert spec.steps[0].schema == (tmp_path / "tenant.schema.json").resolve()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{Summary}\n\nLegacy reference: {LegacyRef}",
         (("", "Summary"), ("\n\nLegacy reference: ", "LegacyRef"), ("", None))),
        ("no placeholders", (("no placeholders", None),)),
        ("{{literal}} {A b}", (("{literal} ", "A b"), ("", None))),
    ],
)  # fmt: skip
def test_parse_template(text: str, expected: tuple) -> None:
    assert parse_template(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{A", "unclosed '{' at position 0; write '{{' for a literal brace"),
        ("{A {B}", "unclosed '{' at position 0; write '{{' for a literal brace"),
        ("A}", "single '}' at position 1; write '}}' for a literal brace"),
        ("{ }", "empty placeholder at position 0; name a column: {Column}"),
    ],
)
def test_parse_template_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_template(text)
    assert str(info.value) == message
