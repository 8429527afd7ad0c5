"""Bad input through the real entry point: a clear message, the right exit code, no traceback.

Each case is what a user meets in practice: a spec with a mistake, or a source that is
not the table it should be. Module tests check the details; this table checks that none
of them reaches the user as a traceback (shown only with --debug).
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest

from loader.cli import main
from loader.errors import SourceError

DATA = Path(__file__).parent / "data" / "edge-cases"

SPEC = """\
spec: 1
name: people
source:
  file: {file}
  key: Ref
target: icasework
steps:
  - id: case
    operation: createcase
    fields:
      Type: {{value: Complaint}}
      ExternalId: {{from: Ref}}
      Customer.Surname: {{from: Surname}}
"""


def people_csv(folder: Path) -> str:
    (folder / "people.csv").write_text("Ref,Surname\nA1,Smith\n", encoding="utf-8")
    return "people.csv"


def empty_csv(folder: Path) -> str:
    (folder / "empty.csv").write_bytes(b"")
    return "empty.csv"


def binary_file(folder: Path) -> str:
    (folder / "image.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20)
    return "image.csv"


def legacy_xls(folder: Path) -> str:
    shutil.copy(DATA / "table.xls", folder / "table.xls")
    return "table.xls"


def encrypted_xlsx(folder: Path) -> str:
    # An encrypted workbook is an OLE compound file holding an "EncryptionInfo" stream.
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    (folder / "locked.xlsx").write_bytes(header + "EncryptionInfo".encode("utf-16-le") * 4)
    return "locked.xlsx"


def not_a_workbook(folder: Path) -> str:
    with zipfile.ZipFile(folder / "archive.xlsx", "w") as z:
        z.writestr("hello.txt", "not a workbook")
    return "archive.xlsx"


def missing_file(folder: Path) -> str:
    return "nowhere.csv"


def workbook_with_sheet(folder: Path) -> str:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Complaints"
    ws.append(["Ref", "Surname"])
    wb.save(folder / "book.xlsx")
    return "book.xlsx"


Case = tuple[Callable[[Path], str], Callable[[str], str], str]

CASES: dict[str, Case] = {
    "yaml syntax": (people_csv, lambda s: s.replace("steps:", "steps: [\n"), "YAML syntax error"),
    "unknown key": (
        people_csv,
        lambda s: s.replace("{from: Ref}", "{from: Ref, requird: true}"),
        "did you mean 'required'?",
    ),
    "wrong type": (people_csv, lambda s: s.replace("key: Ref", "key: {a: 1}"), "key"),
    "unknown transform": (
        people_csv,
        lambda s: s.replace("{from: Ref}", "{from: Ref, transform: [shout]}"),
        "shout",
    ),
    "missing column": (
        people_csv,
        lambda s: s.replace("{from: Surname}", "{from: Surnam}"),
        'did you mean "Surname"?',
    ),
    "missing look-up file": (
        people_csv,
        lambda s: s.replace(
            "{from: Surname}", "{from: Surname, map_file: {file: codes.csv, key: A, value: B}}"
        ),
        "codes.csv",
    ),
    "unknown operation": (
        people_csv,
        lambda s: s.replace("operation: createcase", "operation: createcas"),
        "createcas",
    ),
    "empty source": (empty_csv, lambda s: s, "empty"),
    "binary source": (binary_file, lambda s: s, "image.csv"),
    "legacy xls": (legacy_xls, lambda s: s, ".xls"),
    "password-protected": (encrypted_xlsx, lambda s: s, "password"),
    "zip that is not a workbook": (not_a_workbook, lambda s: s, "archive.xlsx"),
    "missing source": (missing_file, lambda s: s, "nowhere.csv"),
    "no such sheet": (
        workbook_with_sheet,
        lambda s: s.replace("key: Ref", "key: Ref\n  sheet: Complaint"),
        "Complaints",
    ),
}


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    _, err = capsys.readouterr()
    return int(exit_info.value.code or 0), err


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_input_is_a_clear_message_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: str
) -> None:
    make_source, edit, expected = CASES[case]
    spec = tmp_path / "spec.yaml"
    spec.write_text(edit(SPEC.format(file=make_source(tmp_path))), encoding="utf-8")
    args = [command, str(spec), "--out", str(tmp_path / "out")]
    if command == "run":
        args += ["--ledger", str(tmp_path / "ledger.sqlite"), "--quiet"]
    code, err = run_cli(args, capsys)
    assert code == 2, err
    assert err.startswith("Error: ")  # nothing started (no sandbox, no ledger) before it
    assert expected in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(file=missing_file(tmp_path)), encoding="utf-8")
    with pytest.raises(SourceError, match=r"nowhere\.csv"):
        main(["--debug", "validate", str(spec)])


def test_missing_spec_and_bad_option_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(["validate", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and "nope.yaml" in err and "Traceback" not in err
    code, err = run_cli(["validate", str(tmp_path / "nope.yaml"), "--max-errors", "0"], capsys)
    assert code == 2 and "--max-errors" in err
