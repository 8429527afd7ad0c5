from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema
import pytest

from loader.errors import LoaderError
from loader.resources import schema_path
from loader.validate import PayloadValidator, SchemaError, is_email, operation_schema

CORPUS = Path(__file__).parent / "data" / "payloads"
OPERATIONS = [
    "createaccount",
    "createcase",
    "updateaccount",
    "updatecase",
    "updatecustomer",
    "uploaddata",
]
CORPUS_FILES = sorted(p.stem for p in CORPUS.glob("*.jsonl"))


def validator(name: str, overlay: dict[str, Any] | None = None) -> PayloadValidator:
    operation, _, variant = name.partition("-")
    return PayloadValidator(
        operation_schema("icasework", operation, variant=variant or None), overlay
    )


def corpus(name: str) -> list[dict[str, Any]]:
    lines = (CORPUS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


# --- the schema files -----------------------------------------------------------------


@pytest.mark.parametrize("operation", OPERATIONS)
def test_schema_files_are_valid_2020_12_with_id_title_description(operation: str) -> None:
    schema = json.loads(schema_path("icasework", f"{operation}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/icasework/{operation}.schema.json")
    assert schema["title"]
    # each description says what is documented and what was inferred
    assert "[I]" in schema["description"]


def test_request_date_is_a_pattern_not_format_date_time() -> None:
    prop = operation_schema("icasework", "createcase")["properties"]["RequestDate"]
    assert "format" not in prop and "pattern" in prop


@pytest.mark.parametrize(
    ("operation", "required"),
    [
        ("createcase", ["Type"]),
        ("updatecustomer", ["Id"]),
        ("createaccount", ["Type", "ExternalAccountId"]),
        ("updateaccount", ["Type", "ExternalAccountId"]),
    ],
)
def test_required_fields(operation: str, required: list[str]) -> None:
    assert operation_schema("icasework", operation)["required"] == required


def test_updatecase_needs_one_of_the_two_ids() -> None:
    schema = operation_schema("icasework", "updatecase")
    assert schema["anyOf"] == [{"required": ["CaseId"]}, {"required": ["ExternalId"]}]


@pytest.mark.parametrize(
    ("variant", "required"),
    [
        ("customers", ["Id"]),
        ("accounts", ["Type", "ExternalAccountId"]),
        ("cases", ["Type", "ExternalId"]),
    ],
)
def test_uploaddata_variants(variant: str, required: list[str]) -> None:
    schema = operation_schema("icasework", "uploaddata", variant=variant)
    assert schema["required"] == required
    assert schema["title"] == f"iCasework uploaddata row ({variant})"
    assert "oneOf" not in operation_schema("icasework", "uploaddata", variant=variant)


@pytest.mark.parametrize(
    ("target", "operation", "variant", "message"),
    [
        (
            "icasework",
            "createcasez",
            None,
            "unknown icasework operation 'createcasez'; known operations: createaccount, "
            "createcase, updateaccount, updatecase, updatecustomer, uploaddata",
        ),
        ("nowhere", "createcase", None, "unknown target 'nowhere'; known targets: icasework"),
        (
            "icasework",
            "uploaddata",
            None,
            "icasework uploaddata needs a variant (no variant given); "
            "choose one of: customers, accounts, cases",
        ),
        (
            "icasework",
            "uploaddata",
            "people",
            "icasework uploaddata needs a variant (unknown variant 'people'); "
            "choose one of: customers, accounts, cases",
        ),
        (
            "icasework",
            "createcase",
            "cases",
            "icasework createcase has no variants (asked for 'cases')",
        ),
    ],
)
def test_operation_schema_errors(
    target: str, operation: str, variant: str | None, message: str
) -> None:
    with pytest.raises(LoaderError) as info:
        operation_schema(target, operation, variant=variant)
    assert str(info.value) == message


def test_operation_schema_returns_a_copy() -> None:
    operation_schema("icasework", "createcase")["required"].append("Mutated")
    assert operation_schema("icasework", "createcase")["required"] == ["Type"]


# --- the corpus: expectations, and the two engines agree -------------------------------


def test_corpus_is_big_enough() -> None:
    assert len(CORPUS_FILES) == 8
    for name in CORPUS_FILES:
        cases = corpus(name)
        assert len(cases) >= 60, name
        assert any(c["codes"] for c in cases) and any(not c["codes"] for c in cases)


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_engines_agree_and_codes_match(name: str) -> None:
    check = validator(name)
    assert check.fast  # every shipped schema takes the fast path
    for case in corpus(name):
        payload = case["payload"]
        full = check.full_errors(payload)
        assert check.fast_valid(payload) is (not full), payload
        assert sorted({e.code for e in check.errors(payload)}) == case["codes"], payload


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_every_error_names_its_field_and_value(name: str) -> None:
    check = validator(name)
    for case in corpus(name):
        payload = case["payload"]
        for error in check.errors(payload):
            if error.field is None:
                assert error.code == "any-of"
                continue
            assert error.message.startswith(error.field), error
            if error.code == "required":
                assert error.field not in payload and error.value is None
            else:
                assert error.value == payload[error.field]


# --- messages --------------------------------------------------------------------------

ENUM_OVERLAY = {
    "properties": {"RequestMethod": {"enum": ["Email", "Phone", "Web", "Letter", "In person"]}}
}


@pytest.mark.parametrize(
    ("name", "payload", "expected"),
    [
        (
            "createcase",
            {"Type": "Complaint", "Customer.Email": "bob@"},
            [
                SchemaError(
                    "Customer.Email",
                    "format",
                    "Customer.Email: 'bob@' is not a valid email address",
                    "bob@",
                )
            ],
        ),
        ("createcase", {}, [SchemaError("Type", "required", "Type is required", None)]),
        (
            "createcase",
            {"Type": "C", "RequestDate": "1980-03-23T10:20:15+01:00"},
            [
                SchemaError(
                    "RequestDate",
                    "pattern",
                    "RequestDate: '1980-03-23T10:20:15+01:00' should be a date as YYYY-MM-DD "
                    "or a date and time as YYYY-MM-DDTHH:MM:SS",
                    "1980-03-23T10:20:15+01:00",
                )
            ],
        ),
        (
            "createcase",
            {"Type": "C", "Format": "csv", "Customer.Id": 1.5, "Note": None},
            [
                SchemaError(
                    "Customer.Id", "type", "Customer.Id: 1.5 is not text or a whole number", 1.5
                ),
                SchemaError("Format", "enum", "Format: 'csv' is not one of json, xml", "csv"),
                SchemaError("Note", "type", "Note: null is not text, a number or true/false", None),
            ],
        ),
        (
            "createcase",
            {"Type": "C", "Customer.Email": "a" * 250 + "@x.org"},
            [
                SchemaError(
                    "Customer.Email",
                    "format",
                    f"Customer.Email: '{'a' * 57}...' is not a valid email address",
                    "a" * 250 + "@x.org",
                ),
                SchemaError(
                    "Customer.Email",
                    "max-length",
                    f"Customer.Email: '{'a' * 57}...' is 256 characters long; at most 254 allowed",
                    "a" * 250 + "@x.org",
                ),
            ],
        ),
        (
            "updatecase",
            {"Format": "json"},
            [SchemaError(None, "any-of", "CaseId or ExternalId is required", None)],
        ),
        (
            "updateaccount",
            {"Type": "CTAX", "ExternalAccountId": "1", "Size": "L", "Colour": "red"},
            [
                SchemaError(
                    "Size",
                    "additional-properties",
                    "Size is not a field this operation accepts",
                    "L",
                ),
                SchemaError(
                    "Colour",
                    "additional-properties",
                    "Colour is not a field this operation accepts",
                    "red",
                ),
            ],
        ),
        (
            "createcase",
            {"Type": "", "Document1.URL": "ftp://x/y"},
            [
                SchemaError("Type", "pattern", "Type: '' should be non-blank text", ""),
                SchemaError(
                    "Document1.URL",
                    "pattern",
                    "Document1.URL: 'ftp://x/y' should be an http:// or https:// URL",
                    "ftp://x/y",
                ),
            ],
        ),
    ],
)
def test_messages(name: str, payload: dict[str, Any], expected: list[SchemaError]) -> None:
    assert validator(name).errors(payload) == expected


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("bob@example.org", True),
        ("Mary.O'Neil+foi@council.gov.uk", True),
        ("bob@", False),
        ("bob@localhost", False),
        ("bob smith@example.org", False),
        ("bob@example.org\n", False),
        ("a" * 250 + "@x.org", False),
        (42, True),  # not a string: the type keyword judges it
    ],
)
def test_is_email(value: object, ok: bool) -> None:
    assert is_email(value) is ok


# --- overlay ---------------------------------------------------------------------------


def test_overlay_adds_enum_and_required() -> None:
    overlay = {"required": ["RequestMethod"], **ENUM_OVERLAY}
    check = validator("createcase", overlay)
    assert check.errors({"Type": "Complaint", "RequestMethod": "Web"}) == []
    assert check.errors({"Type": "Complaint", "RequestMethod": "Fax"}) == [
        SchemaError(
            "RequestMethod",
            "enum",
            "RequestMethod: 'Fax' is not one of Email, Phone, Web, Letter, In person",
            "Fax",
        )
    ]
    assert check.errors({"Type": "Complaint"}) == [
        SchemaError("RequestMethod", "required", "RequestMethod is required", None)
    ]
    # the base schema still applies under the overlay
    assert [e.code for e in check.errors({"RequestMethod": "Web", "Format": "x"})] == [
        "required",
        "enum",
    ]


def test_overlay_and_base_requiring_the_same_field_report_it_once() -> None:
    check = validator("createcase", {"required": ["Type"]})
    assert check.errors({}) == [SchemaError("Type", "required", "Type is required", None)]


@pytest.mark.parametrize("name", ["createcase", "updatecase"])
def test_overlay_keeps_the_engines_agreeing(name: str) -> None:
    overlay = {"required": ["Team"], "properties": {"Team": {"enum": ["Housing", "Waste"]}}}
    check = validator(name, overlay)
    assert check.fast
    for case in corpus(name):
        for team in (None, "Housing", "Parks"):
            payload = dict(case["payload"])
            if team is not None:
                payload["Team"] = team
            assert check.fast_valid(payload) is (not check.full_errors(payload)), payload


def test_overlay_with_a_keyword_the_fast_engine_lacks_runs_on_jsonschema_alone() -> None:
    overlay = {"dependentRequired": {"Customer.Email": ["Customer.Surname"]}}
    check = validator("createcase", overlay)
    assert not check.fast and check.fast_valid({"Type": "C"}) is None
    errors = check.errors({"Type": "C", "Customer.Email": "a@b.org"})
    assert [(e.field, e.code) for e in errors] == [(None, "dependent-required")]
    assert check.errors({"Type": "C", "Customer.Email": "a@b.org", "Customer.Surname": "Lee"}) == []


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        (
            {"properties": {"Team": {"type": "text"}}},
            "overlay schema is not a valid JSON Schema at properties/Team/type: ",
        ),
        ({"required": "Team"}, "overlay schema is not a valid JSON Schema at required: "),
    ],
)
def test_bad_overlay_is_a_loader_error(overlay: dict[str, Any], message: str) -> None:
    with pytest.raises(LoaderError, match="^" + message):
        validator("createcase", overlay)


def test_remote_refs_are_not_fetched() -> None:
    with pytest.raises(LoaderError, match="remote schemas are not fetched"):
        validator("createcase", {"$ref": "https://example.org/tenant.json"})


# --- behaviour -------------------------------------------------------------------------


def test_validation_never_writes_into_the_payload() -> None:
    schema = operation_schema("icasework", "createcase")
    schema["properties"]["Format"]["default"] = "json"
    payload = {"Type": "Complaint"}
    assert PayloadValidator(schema).errors(payload) == []
    assert payload == {"Type": "Complaint"}


def test_any_mapping_is_accepted() -> None:
    payload: Mapping[str, Any] = MappingProxyType({"Type": "Complaint", "Format": "pdf"})
    assert [e.code for e in validator("createcase").errors(payload)] == ["enum"]


def test_non_object_payload_is_a_whole_payload_error() -> None:
    errors = validator("createcase").errors(["Type"])  # type: ignore[arg-type]  # deliberate misuse
    assert errors == [SchemaError(None, "type", "a list is not an object", None)]


def test_schema_error_is_frozen() -> None:
    error = SchemaError("Type", "required", "Type is required", None)
    with pytest.raises(AttributeError):
        error.code = "x"  # type: ignore[misc]  # frozen dataclass: the point of the test


# --- the fast engine specialised per key set ------------------------------------------


@pytest.fixture
def specialise_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import loader.validate as module

    monkeypatch.setattr(module, "SPECIALISE_AFTER", 1)


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_specialised_engines_agree_with_jsonschema(name: str, specialise_at_once: None) -> None:
    check = validator(name)
    for case in corpus(name):
        payload = case["payload"]
        full = check.full_errors(payload)
        assert check.fast_valid(payload) is (not full), payload
        assert check.fast_valid(dict(payload)) is (not full), payload  # the cached engine
    if check._specialisable:
        assert check._keyed is not None  # the corpus did run on a specialised engine


@pytest.mark.parametrize(
    ("payload", "valid"),
    [
        ({"Type": "C", "Document1.URL": "https://x.org/a.pdf"}, True),
        ({"Type": "C", "Document1.URL": "ftp://x.org/a.pdf"}, False),
        ({"Type": "C", "Document1.URL\n": "https://x.org/a.pdf"}, True),  # not a Document key
        ({"Type": "C", "Document12.URLLoadContent": "yes"}, False),
        ({"Type": "C", "Document0.Name": ["a"]}, False),  # no pattern: additionalProperties
        ({"Type": "C", "Customer.Email": "bob@"}, False),
        ({"Type": "C", 'Weird "key"{x}': 1}, True),  # unsafe key: general engine
        ({"Type": "C", 'Weird "key"{x}': None}, False),
    ],
)
def test_specialised_engine_verdicts(
    payload: dict[str, Any], valid: bool, specialise_at_once: None
) -> None:
    check = validator("createcase")
    for _ in range(3):
        assert check.fast_valid(payload) is valid
        assert (check.full_errors(payload) == []) is valid


def test_keys_are_specialised_after_a_few_payloads_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import loader.validate as module

    monkeypatch.setattr(module, "_MAX_KEYS", 4)
    check = validator("createcase")
    payload = {"Type": "Complaint", "Document1.Name": "a.pdf"}
    for _ in range(module.SPECIALISE_AFTER - 1):
        assert check.fast_valid(payload) is True
    assert check._keyed is None
    assert check.fast_valid({"Type": "Complaint", "Label": "x"}) is True
    assert check._keyed is not None
    assert check._known == {"Type", "Document1.Name", "Label"}
    assert check.fast_valid({"Type": "Complaint", "Document2.Name": " "}) is False  # widened
    assert check._known == {"Type", "Document1.Name", "Label", "Document2.Name"}
    engine = check._keyed
    assert check.fast_valid({"Type": "Complaint", "Document3.Name": "b"}) is True  # too many
    assert check.fast_valid({"Type": "C", "Document3.Name": "\t"}) is False
    assert check._known == {"Type", "Document1.Name", "Label", "Document2.Name"}
    assert check._keyed is engine
    assert check.fast_valid({"Type": "C", "Document1.Name": ""}) is False  # the known keys


def test_overlay_is_specialised_too(specialise_at_once: None) -> None:
    overlay = {
        "properties": {"Team": {"enum": ["Housing"]}},
        "patternProperties": {"^Team$": {"minLength": 3}},
        "additionalProperties": {"type": "string"},
    }
    check = validator("createcase", overlay)
    for payload, valid in [
        ({"Type": "C", "Team": "Housing"}, True),
        ({"Type": "C", "Team": "Parks"}, False),
        ({"Type": "C", "Extra": 1}, False),
        ({"Type": "C", "Extra": "x"}, True),
    ]:
        assert check.fast_valid(payload) is valid
        assert (check.full_errors(payload) == []) is valid
