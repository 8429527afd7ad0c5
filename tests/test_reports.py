from __future__ import annotations

import csv
import datetime as dt
import json
import re
from pathlib import Path

import openpyxl
import pytest

from loader.errors import LoaderError
from loader.issues import Issue
from loader.reports import (
    Summary,
    TableWriter,
    formula_safe,
    mask,
    write_report_html,
    write_report_json,
)

SUMMARY = Summary(
    rows=3, valid=1, invalid=2, issues=3, warnings=1, source="complaints.xlsx",
    sheet="Complaints", spec="complaints.yaml",
)  # fmt: skip
EMAIL = Issue(
    code="format",
    message="Customer.Email: 'bob.secret@' is not a valid email address",
    row=27,
    sheet="Complaints",
    column="Email",
    column_number=6,
    field="Customer.Email",
    value="bob.secret@",
    step="case",
)
TYPE = Issue(code="required", message="Type is required", row=28, field="Type", step="case")
BLANK = Issue(code="blank-row", message="row 29 is blank", row=29, severity="warning")
ISSUES = [EMAIL, TYPE, BLANK]


def pii(issue: Issue) -> bool:
    return issue.field == "Customer.Email"


def no_pii(issue: Issue) -> bool:
    return False


# --- report.json -------------------------------------------------------------------------


def test_report_json_shape(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_report_json(path, SUMMARY, iter(ISSUES), pii=no_pii)
    data = json.loads(path.read_text(encoding="utf-8"))
    generated = data["summary"].pop("generated_at")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", generated)
    assert data["summary"] == {
        "rows": 3, "valid": 1, "invalid": 2, "issues": 3, "warnings": 1,
        "source": "complaints.xlsx", "sheet": "Complaints", "spec": "complaints.yaml",
        "stopped_early": False,
    }  # fmt: skip
    assert data["issues"][0] == {
        "row": 27,
        "sheet": "Complaints",
        "column": "Email",
        "column_number": 6,
        "cell": "F27",
        "field": "Customer.Email",
        "code": "format",
        "message": "Customer.Email: 'bob.secret@' is not a valid email address",
        "value": "bob.secret@",
        "step": "case",
        "severity": "error",
    }
    assert data["issues"][1]["column"] is None and data["issues"][1]["cell"] is None
    assert data["issues"][2]["severity"] == "warning"
    assert not list(tmp_path.glob("*.partial"))


def test_report_json_with_no_issues(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_report_json(path, SUMMARY, [], pii=no_pii)
    assert json.loads(path.read_text())["issues"] == []


def test_report_json_unwritable_is_a_loader_error(tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match=r"^cannot write "):
        write_report_json(tmp_path / "missing" / "report.json", SUMMARY, [], pii=no_pii)


# --- masking -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("bob@", "•••• (4 chars)"),
        ("x", "•••• (1 char)"),
        ("", ""),
        (None, None),
    ],
)
def test_mask(value: str | None, masked: str | None) -> None:
    assert mask(value) == masked


def pii_issues() -> list[Issue]:
    return [
        EMAIL,
        Issue(
            code="max-length",
            message='Customer.Surname: "O\'Brien-Smythe" is 14 characters long; at most 10',
            row=30,
            column="Surname",
            column_number=3,
            field="Customer.Surname",
            value="o'brien-smythe",
        ),
        Issue(
            code="type",
            message="Customer.Phone: 7700900123 is not text",
            row=31,
            field="Customer.Phone",
            value="7700900123",
        ),
    ]


@pytest.mark.parametrize("kind", ["json", "html"])
def test_pii_values_never_appear_in_the_clear(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"report.{kind}"
    issues = pii_issues()
    if kind == "json":
        write_report_json(path, SUMMARY, issues, pii=lambda i: True)
    else:
        write_report_html(path, SUMMARY, issues, pii=lambda i: True, title="Dry run")
    raw = path.read_bytes().lower()
    for secret in ["bob.secret", "brien", "smythe", "7700900123"]:
        assert secret.encode() not in raw
        assert json.dumps(secret).encode() not in raw
    assert "•••• (11 chars)".encode() in raw


def test_masked_message_keeps_the_rest_of_the_words(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_report_json(path, SUMMARY, [EMAIL, TYPE], pii=pii)
    first, second = json.loads(path.read_text())["issues"]
    assert first["message"] == "Customer.Email: '•••• (11 chars)' is not a valid email address"
    assert first["value"] == "•••• (11 chars)"
    assert second["message"] == "Type is required"  # not pii: untouched


# --- report.html ------------------------------------------------------------------------------


def test_html_is_self_contained_and_shows_the_summary(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    write_report_html(path, SUMMARY, ISSUES, pii=no_pii, title="Complaints dry run")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert "<title>Complaints dry run</title>" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.IGNORECASE)
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "@import" not in page
    for label, n in [("Rows", 3), ("Valid", 1), ("Invalid", 2), ("Issues", 3), ("Warnings", 1)]:
        assert f"<b>{n:,}</b>{label}</li>" in page
    assert "<td>Complaints!F27</td>" in page
    assert "The value is not well formed" in page  # the code's description
    assert "<td>Complaints!Email</td><td>F</td>" in page  # by column, with its letter
    assert "All issues (3)" in page


def test_html_escapes_everything(tmp_path: Path) -> None:
    nasty = "<script>alert('x')</script>"
    issue = Issue(
        code="<b>code</b>",
        message=f"Details: {nasty}",
        row=2,
        sheet="<Sheet>",
        column="<img src=x onerror=alert(1)>",
        column_number=1,
        field="Details&Co",
        value=nasty,
    )
    path = tmp_path / "report.html"
    summary = Summary(1, 0, 1, 1, 0, source="<s>.csv", sheet=None, spec='"spec".yaml')
    write_report_html(path, summary, [issue], pii=no_pii, title="<Title>")
    page = path.read_text(encoding="utf-8")
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<img" not in page and "<b>code</b>" not in page and "<Title>" not in page
    assert "&lt;s&gt;.csv" in page and "&quot;spec&quot;.yaml" in page
    assert page.count("<script>") == 1  # only the page's own filter/sort script


def test_html_caps_the_issue_rows(tmp_path: Path) -> None:
    issues = [
        Issue(code="required", message="Type is required", row=n, field="Type")
        for n in range(2, 2 + 25)
    ]
    path = tmp_path / "report.html"
    summary = Summary(25, 0, 25, 25, 0, source="a.csv", sheet=None, spec="s.yaml")
    write_report_html(path, summary, issues, pii=no_pii, title="t", max_rows=10)
    page = path.read_text(encoding="utf-8")
    assert page.count('<tr class="error">') == 10
    assert "… and 15 more, see report.json." in page
    assert "<td>required</td>" not in page  # codes are in <code>
    assert '<td class="n">25</td>' in page  # the by-code count still covers all 25


def test_html_default_cap_is_ten_thousand(tmp_path: Path) -> None:
    issues = [Issue(code="blank-row", message="blank", row=n) for n in range(10_005)]
    path = tmp_path / "report.html"
    summary = Summary(10_005, 0, 10_005, 10_005, 0, source="a.csv", sheet=None, spec="s.yaml")
    write_report_html(path, summary, issues, pii=no_pii, title="t")
    page = path.read_text(encoding="utf-8")
    assert page.count('<tr class="error">') == 10_000
    assert "… and 5 more, see report.json." in page


def test_html_with_no_issues_and_stopped_early(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    summary = Summary(5, 5, 0, 0, 0, source="a.csv", sheet=None, spec="s", stopped_early=True)
    write_report_html(path, summary, [], pii=no_pii, title="t")
    page = path.read_text(encoding="utf-8")
    assert "No issues: every row is ready to load." in page
    assert "The check stopped early" in page


@pytest.mark.parametrize(
    ("rows", "valid", "invalid", "message"),
    [
        (1, 1, 1, r"valid \+ invalid \(1 \+ 1\) > rows \(1\)"),
        (-1, 0, 0, "summary counts cannot be negative"),
    ],
)
def test_summary_checks_its_counts(rows: int, valid: int, invalid: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Summary(rows, valid, invalid, issues=0, warnings=0, source="a", sheet=None, spec="s")


# --- formula safety and the table writer ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("=1+2", "'=1+2"),
        ("+44 20 7946 0000", "'+44 20 7946 0000"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("a=b", "a=b"),
        ("", ""),
        (-5, -5),
        (None, None),
    ],
)
def test_formula_safe(value: object, safe: object) -> None:
    assert formula_safe(value) == safe


DANGEROUS = ["=1+2", "+1", "-1", "@x", "\tx", "\rx"]


def test_csv_table(tmp_path: Path) -> None:
    path = tmp_path / "rejects.csv"
    with TableWriter(path, ["LegacyRef", "Email", "Received", "_errors"]) as table:
        for n, bad in enumerate(DANGEROUS):
            table.write([f"R{n}", bad, dt.date(2021, 2, 15), 'Customer.Email: bad, "very"'])
        table.write([7, None, dt.datetime(2021, 2, 15, 16, 42, 19), "line1\nline2"])
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM for Excel
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["LegacyRef", "Email", "Received", "_errors"]
    assert [r[1] for r in rows[1:7]] == ["'" + d for d in DANGEROUS]
    assert rows[1][2] == "2021-02-15" and rows[1][3] == 'Customer.Email: bad, "very"'
    assert rows[7] == ["7", "", "2021-02-15 16:42:19", "line1\nline2"]


def test_xlsx_table_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "rejects.xlsx"
    with TableWriter(path, ["Ref", "Value", "When", "Amount"]) as table:
        for bad in DANGEROUS:
            table.write(["R", bad, dt.date(2021, 2, 15), 1.5])
        table.write(["0123", "bell\x07", dt.datetime(2021, 2, 15, 16, 42, 19), -3])
    book = openpyxl.load_workbook(path)
    sheet = book["rejects"]
    rows = list(sheet.iter_rows())
    assert [c.value for c in rows[0]] == ["Ref", "Value", "When", "Amount"]
    for row, bad in zip(rows[1:7], DANGEROUS, strict=True):
        cell = row[1]
        # XML reads a lone CR back as LF (end-of-line normalisation): the one change.
        assert cell.value == bad.replace("\r", "\n")
        assert cell.data_type == "s"  # text, never a formula
        assert cell.quotePrefix  # Excel keeps it text even when the cell is edited
    assert rows[1][2].is_date and rows[1][2].value == dt.datetime(2021, 2, 15)
    assert rows[1][3].value == 1.5 and rows[1][3].data_type == "n"
    last = [c.value for c in rows[7]]
    assert last == ["0123", "bell\ufffd", dt.datetime(2021, 2, 15, 16, 42, 19), -3]
    assert rows[7][0].data_type == "s" and not rows[7][0].quotePrefix


def test_table_writer_rejects_other_suffixes_and_wrong_widths(tmp_path: Path) -> None:
    with pytest.raises(
        LoaderError, match=r"rejects\.txt: a table file must end in \.csv or \.xlsx"
    ):
        TableWriter(tmp_path / "rejects.txt", ["a"])
    table = TableWriter(tmp_path / "failures.csv", ["key", "error"])
    with pytest.raises(ValueError, match="1 values for 2 columns"):
        table.write(["k"])
    table.close()
    table.close()  # closing twice is harmless
    with pytest.raises(ValueError, match="is closed"):
        table.write(["k", "e"])


def test_table_writer_streams_many_rows(tmp_path: Path) -> None:
    path = tmp_path / "big.xlsx"
    with TableWriter(path, ["n", "text"]) as table:
        for n in range(5_000):
            table.write([n, f"=row {n}"])
    sheet = openpyxl.load_workbook(path, read_only=True).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert len(rows) == 5_001 and rows[-1] == (4_999, "=row 4999")
