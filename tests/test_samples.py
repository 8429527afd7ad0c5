"""The committed samples and example specs: reproducible, shaped as documented, and
loadable; the dry run of each finds exactly the faults planted in it."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import jsonschema
import openpyxl
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
MAPPINGS = ROOT / "mappings"
SPECS = sorted(MAPPINGS.glob("*.yaml"))
CFPB_SHA256 = "c16e96c8159debcb293e3f373dc0bb3ce334afeb93ec4dc2c52547eaf2e3ed52"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_samples"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


make_samples = _load_generator()


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list]]:
    out = tmp_path_factory.mktemp("samples")
    return out, make_samples.generate(out)


# --- the files -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["complaints.xlsx", "contacts-export.csv"])
def test_generator_rewrites_the_committed_files_byte_for_byte(
    regenerated: tuple[Path, dict[str, list]], name: str
) -> None:
    out, _ = regenerated
    assert (out / name).read_bytes() == (SAMPLES / name).read_bytes()


def test_cfpb_sample_is_an_unchanged_copy() -> None:
    data = (SAMPLES / "cfpb-complaints.csv").read_bytes()
    assert data.startswith(b"date_received,product,sub_product,issue,")
    assert hashlib.sha256(data).hexdigest() == CFPB_SHA256


def test_planted_faults_are_three_to_five_percent_of_the_workbook(
    regenerated: tuple[Path, dict[str, list]],
) -> None:
    _, planted = regenerated
    rows = {where_row for reason, places in planted.items() for where_row in places}
    workbook_rows = {r for r in rows if r[0] in ("Complaints", "Accounts")}
    total = make_samples.COMPLAINT_ROWS + make_samples.ACCOUNT_ROWS
    assert 0.03 <= len(workbook_rows) / total <= 0.05
    # One fault per planted row: the dry-run counts below rely on it.
    assert len(rows) == sum(len(places) for places in planted.values())


def test_complaints_workbook_layout() -> None:
    wb = openpyxl.load_workbook(SAMPLES / "complaints.xlsx")
    assert wb.sheetnames == ["Complaints", "Accounts", "Lookups"]
    assert wb["Lookups"].sheet_state == "hidden"
    ws = wb["Complaints"]
    assert ws["A1"].value == "Legacy complaints extract"
    assert str(ws["A2"].value).startswith("Exported 2024-05-14")
    assert [c.value for c in ws[3]] == make_samples.COMPLAINT_COLUMNS
    assert ws.max_row == 3 + make_samples.COMPLAINT_ROWS + 1  # one blank row
    assert all(c.value is None for c in ws[704])
    errors = [(c.coordinate, c.value) for row in ws.iter_rows() for c in row if c.data_type == "e"]
    assert errors == [("I79", "#N/A"), ("J763", "#N/A")]
    phones = [c for c in ws["H"][3:] if isinstance(c.value, int)]
    assert len(phones) > 1000
    assert {c.number_format for c in phones} == {"00000000000"}
    assert ws["H4"].value == 1632960773  # shown as 01632960773
    hand_typed = [c.value for c in ws["B"][3:] if isinstance(c.value, str)]
    assert "31/02/2021" in hand_typed
    assert any(len(v) <= 8 for v in hand_typed)  # "3/2/19" style
    accounts = wb["Accounts"]
    assert [c.value for c in accounts[1]] == make_samples.ACCOUNT_COLUMNS
    assert accounts.max_row == 1 + make_samples.ACCOUNT_ROWS


def test_contacts_export_is_cp1252_with_semicolons() -> None:
    raw = (SAMPLES / "contacts-export.csv").read_bytes()
    assert b"O\x92Brien" in raw  # the curly apostrophe as Windows-1252 writes it
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("cp1252")
    assert "Zoë" in text and "Ægir" in text
    rows = list(csv.reader(text.splitlines(), delimiter=";"))
    assert rows[0] == make_samples.CONTACT_COLUMNS
    assert len(rows) == 1 + make_samples.CONTACT_ROWS
    short = [n + 1 for n, row in enumerate(rows) if len(row) != len(rows[0])]
    assert short == [120]  # the record cut short (spreadsheet row numbering)
    assert rows[20][4] == "12 Queen’s Walk; rear entrance"


# --- the specs -------------------------------------------------------------------------


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_matches_the_shipped_json_schema(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=../schemas/spec.schema.json\n")
    schema = json.loads((ROOT / "schemas" / "spec.schema.json").read_text(encoding="utf-8"))
    errors = [
        e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(yaml.safe_load(text))
    ]
    assert errors == []


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_loads(path: Path) -> None:
    from loader.spec import load_spec

    spec = load_spec(path)
    assert spec.source.file.exists()
    assert spec.steps


def test_channel_lookup_and_cfpb_map_use_only_the_tenants_methods() -> None:
    overlay = json.loads((MAPPINGS / "tenant-createcase.schema.json").read_text(encoding="utf-8"))
    methods = set(overlay["properties"]["RequestMethod"]["enum"])
    with (MAPPINGS / "channels.csv").open(encoding="utf-8", newline="") as fh:
        assert {row["Method"] for row in csv.DictReader(fh)} <= methods
    cfpb_map = yaml.safe_load((MAPPINGS / "cfpb.yaml").read_text(encoding="utf-8"))["steps"][0][
        "fields"
    ]["RequestMethod"]["map"]
    assert set(cfpb_map.values()) <= methods
    with (SAMPLES / "cfpb-complaints.csv").open(encoding="utf-8", newline="") as fh:
        assert {row["submitted_via"] for row in csv.DictReader(fh)} == set(cfpb_map)


# --- the dry run finds what was planted, and nothing else ---------------------------------

WORKBOOK_CASES = {
    "blank-row": 1,
    "cell-error": 2,
    "duplicate-key": 6,
    "format": 14,
    "invalid-date": 3,
    "missing-value": 12,
    "unmapped-value": 10,
}
CONTACTS = {
    "duplicate-key": 1,
    "format": 1,
    "missing-cell": 3,
    "missing-key": 1,
    "missing-value": 1,
}

# spec -> (rows, invalid, issue counts by code, where the planted faults are)
DRY_RUNS = {
    "createcase.yaml": (1500, 47, WORKBOOK_CASES, "Complaints"),
    "account-and-case.yaml": (1500, 47, WORKBOOK_CASES, "Complaints"),
    "createaccount.yaml": (
        500,
        14,
        {
            "duplicate-key": 3,
            "invalid-date": 2,
            "invalid-number": 3,
            "missing-key": 2,
            "missing-value": 2,
            "unmapped-value": 4,
        },
        "Accounts",
    ),
    "updatecustomer.yaml": (500, 4, CONTACTS, "contacts-export.csv"),
    "uploaddata.yaml": (500, 4, CONTACTS, "contacts-export.csv"),
    "cfpb.yaml": (1000, 0, {}, "cfpb-complaints.csv"),
}


def test_every_spec_has_a_dry_run_expectation() -> None:
    assert sorted(DRY_RUNS) == [p.name for p in SPECS]


@pytest.mark.parametrize("name", sorted(DRY_RUNS))
def test_dry_run_finds_exactly_the_planted_faults(
    name: str, tmp_path: Path, regenerated: tuple[Path, dict[str, list]]
) -> None:
    from loader.dryrun import dry_run
    from loader.spec import load_spec

    rows, invalid, codes, where = DRY_RUNS[name]
    result = dry_run(load_spec(MAPPINGS / name), out_dir=tmp_path)
    report = json.loads(result.report_json.read_text(encoding="utf-8"))
    summary = report["summary"]
    assert (summary["rows"], summary["valid"], summary["invalid"]) == (
        rows,
        rows - invalid,
        invalid,
    )
    found: dict[str, int] = {}
    for issue in report["issues"]:
        found[issue["code"]] = found.get(issue["code"], 0) + 1
    assert found == codes
    _, planted = regenerated
    planted_rows = {row for places in planted.values() for sheet, row in places if sheet == where}
    assert {issue["row"] for issue in report["issues"]} == planted_rows
    assert result.exit_code == (1 if invalid else 0)
    assert (result.rejects is None) == (invalid == 0)
