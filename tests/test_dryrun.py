"""`loader validate` end to end: real files in tmp_path, the real CLI entry point."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import openpyxl
import pytest

from loader.cli import main

SPEC = """\
spec: 1
name: people
source:
  file: people.csv
  key: Ref
target: icasework
steps:
  - id: case
    operation: createcase
    fields:
      Type: {value: Complaint}
      ExternalId: {from: Ref}
      RequestDate: {from: Received, date: ["%d/%m/%Y"], format: "%Y-%m-%dT%H:%M:%S"}
      Customer.Surname: {from: Surname, required: true}
      Customer.Email: {from: Email, pii: true}
"""

ROWS = [
    ["Ref", "Received", "Surname", "Email"],
    ["A1", "01/02/2021", "Smith", "smith@example.org"],
    ["A2", "31/02/2021", "Jones", "jones@example.org"],  # no such date
    ["A3", "03/02/2021", "", "x@example.org"],  # no surname
    ["A4", "04/02/2021", "Brown", "brown@"],  # bad email (pii)
    ["A1", "05/02/2021", "Green", "green@example.org"],  # duplicate key
    ["A6", "06/02/2021", "=HYPERLINK(1)", "w@example.org"],
]


def write_case(tmp_path: Path, rows: list[list[str]] = ROWS, spec: str = SPEC) -> Path:
    with (tmp_path / "people.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    path = tmp_path / "spec.yaml"
    path.write_text(spec, encoding="utf-8")
    return path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_report_json_points_at_cells_and_masks_pii(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_case(tmp_path)
    code, out, _ = run_cli(["validate", str(spec), "--out", str(tmp_path / "out")], capsys)
    assert code == 1
    assert "6 rows: 2 valid, 4 invalid" in out
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["summary"]["rows"] == 6
    assert report["summary"]["valid"] == 2
    assert report["summary"]["invalid"] == 4
    found = {(i["row"], i["cell"], i["field"], i["code"]) for i in report["issues"]}
    assert (3, "B3", "RequestDate", "invalid-date") in found
    assert (4, "C4", "Customer.Surname", "missing-value") in found
    assert (5, "D5", "Customer.Email", "format") in found
    assert any(i["row"] == 6 and i["code"] == "duplicate-key" for i in report["issues"])
    raw = (tmp_path / "out" / "report.json").read_bytes() + (
        tmp_path / "out" / "report.html"
    ).read_bytes()
    assert b"brown@" not in raw  # the pii value is masked everywhere


def test_rejects_keep_source_columns_and_neutralise_formulas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_case(tmp_path)
    run_cli(["validate", str(spec), "--out", str(tmp_path / "out")], capsys)
    with (tmp_path / "out" / "rejects.csv").open(encoding="utf-8-sig", newline="") as f:
        rejects = list(csv.reader(f))
    assert rejects[0] == ["Ref", "Received", "Surname", "Email", "_errors"]
    assert [r[0] for r in rejects[1:]] == ["A2", "A3", "A4", "A1"]
    assert "not a date" in rejects[1][4]


def test_valid_file_exits_zero_and_emits_payloads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_case(tmp_path, ROWS[:2])
    emit = tmp_path / "payloads.jsonl"
    code, out, _ = run_cli(
        ["validate", str(spec), "--out", str(tmp_path / "o"), "--emit", str(emit)], capsys
    )
    assert code == 0, out
    lines = [json.loads(line) for line in emit.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {
            "row": 2,
            "key": "A1",
            "step": "case",
            "payload": {
                "Type": "Complaint",
                "ExternalId": "A1",
                "RequestDate": "2021-02-01T00:00:00",
                "Customer.Surname": "Smith",
                "Customer.Email": "smith@example.org",
            },
        }
    ]
    assert not (tmp_path / "o" / "rejects.csv").exists()


def test_max_errors_stops_early_with_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_case(tmp_path)
    code, out, _ = run_cli(
        ["validate", str(spec), "--out", str(tmp_path / "o"), "--max-errors", "1"], capsys
    )
    assert code == 3
    assert "Stopped early" in out
    report = json.loads((tmp_path / "o" / "report.json").read_text(encoding="utf-8"))
    assert report["summary"]["rows"] == 2


def test_missing_column_is_a_spec_error_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_case(tmp_path, spec=SPEC.replace("{from: Email,", "{from: Emial,"))
    code, _, err = run_cli(["validate", str(spec), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert "Emial" in err and "Email" in err
    assert "Traceback" not in err


def test_source_override_and_unreadable_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_case(tmp_path)
    (tmp_path / "binary.csv").write_bytes(b"\x00\x01\x02" * 100)
    code, _, err = run_cli(
        ["validate", str(spec), "--source", str(tmp_path / "binary.csv")], capsys
    )
    assert code == 2
    assert "binary.csv" in err and "Traceback" not in err


def test_xlsx_rejects_keep_sheet_and_header_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Complaints"
    ws.append(["Legacy extract"])
    ws.append([])
    for row in ROWS[:3]:
        ws.append(row)
    wb.save(tmp_path / "people.xlsx")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        SPEC.replace("file: people.csv", "file: people.xlsx\n  sheet: Complaints\n  header_row: 3"),
        encoding="utf-8",
    )
    code, _, _ = run_cli(["validate", str(spec), "--out", str(tmp_path / "o")], capsys)
    assert code == 1
    report = json.loads((tmp_path / "o" / "report.json").read_text(encoding="utf-8"))
    bad = [i for i in report["issues"] if i["code"] == "invalid-date"]
    assert [(i["sheet"], i["cell"]) for i in bad] == [("Complaints", "B5")]
    rejects = openpyxl.load_workbook(tmp_path / "o" / "rejects.xlsx")
    sheet = rejects["Complaints"]
    assert [c.value for c in sheet[3]] == ["Ref", "Received", "Surname", "Email", "_errors"]
    assert sheet["A4"].value == "A2"
    # The rejects file loads with the same spec: feed it back.
    code, out, _ = run_cli(
        [
            "validate",
            str(spec),
            "--source",
            str(tmp_path / "o" / "rejects.xlsx"),
            "--out",
            str(tmp_path / "o2"),
        ],
        capsys,
    )
    assert code == 1 and "1 row: 0 valid, 1 invalid" in out


def test_schema_command_prints_the_spec_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["schema"], capsys)
    assert code == 0
    schema = json.loads(out)
    assert "steps" in schema["properties"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("spec: 1\nname: [unclosed\n", "YAML syntax error"),
        (textwrap.dedent(SPEC).replace("target:", "targte:"), "did you mean 'target'?"),
    ],
)
def test_spec_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    spec = write_case(tmp_path, spec=text)
    code, _, err = run_cli(["validate", str(spec)], capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_summary_issue_count_is_the_length_of_the_issue_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_case(tmp_path, [*ROWS, ["", "", "", ""]])  # a blank row: a warning
    code, out, _ = run_cli(["validate", str(spec), "--out", str(tmp_path / "o")], capsys)
    assert code == 1
    report = json.loads((tmp_path / "o" / "report.json").read_text(encoding="utf-8"))
    summary = report["summary"]
    assert summary["issues"] == len(report["issues"])
    assert summary["warnings"] == 1
    assert f"({summary['issues'] - 1} errors, 1 warning)" in out
