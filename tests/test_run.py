"""`loader run`, `status`, `results` end to end against the embedded sandbox (real HTTP)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from loader.cli import main
from loader.execute import Settings
from loader.ledger import Ledger
from loader.run import RunOptions, run
from loader.sandbox.store import Store
from loader.spec import load_spec

SPEC = """\
spec: 1
name: people
source: {file: people.csv, key: Ref}
target: icasework
steps:
  - id: case
    operation: createcase
    fields:
      Type: {value: Complaint}
      ExternalId: {from: Ref, required: true}
      RequestMethod: {from: Channel}
      Customer.Surname: {from: Surname, required: true, pii: true}
"""
FAST = Settings(concurrency=8, grace=0.2, backoff=0.01, backoff_max=0.05)


def write_source(folder: Path, rows: list[tuple[str, str, str]]) -> None:
    with (folder / "people.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["Ref", "Channel", "Surname"])
        writer.writerows(rows)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    write_source(tmp_path, [(f"R{i:03d}", "Email", f"Surname{i}") for i in range(30)])
    return tmp_path


def go(folder: Path, **options: Any) -> tuple[int, dict[str, Any]]:
    spec = load_spec(folder / "spec.yaml")
    opts = RunOptions(ledger=folder / "runs" / "ledger.sqlite", settings=FAST, **options)
    result = run(spec, opts)
    return result.exit_code, result.summary


def store(folder: Path) -> Store:
    return Store(folder / "runs" / "sandbox.sqlite")


def test_a_run_sends_every_row_once_and_a_rerun_sends_nothing(project: Path) -> None:
    code, summary = go(project)
    assert code == 0
    assert summary["this_run"]["succeeded"] == 30
    assert store(project).cases_by_external_id() == {f"R{i:03d}": 1 for i in range(30)}
    code, summary = go(project)
    assert (code, summary["requests"]) == (0, 0)
    assert summary["rows_read"] <= 1  # resumed at the checkpoint, not from the top
    assert store(project).case_count() == 30
    out = project / "runs"
    assert {p.name for p in out.iterdir()} >= {"results.csv", "run-summary.json"}
    assert not (out / "failures.csv").exists()
    with (out / "results.csv").open(encoding="utf-8-sig") as f:  # Excel wants the BOM
        rows = list(csv.DictReader(f))
    assert len(rows) == 30
    assert list(rows[0]) == ["key", "row", "step", "state", "target_id", "error_code", "error_info"]
    assert {r["state"] for r in rows} == {"succeeded"} and all(r["target_id"] for r in rows)


def test_value_list_rejections_fail_with_code_and_info_and_the_rest_succeed(project: Path) -> None:
    write_source(project, [("A1", "Email", "Ok"), ("A2", "Fax", "Nope"), ("A3", "Web", "Ok")])
    code, _summary = go(project)
    assert code == 1
    with Ledger.open(project / "runs" / "ledger.sqlite", readonly=True) as ledger:
        a2 = ledger.get("A2", "case")
        assert a2 is not None and str(a2.state) == "failed"
        assert a2.http_status == 400 and a2.error_code and a2.error_info
        assert ledger.counts().states["succeeded"] == 2
    with (project / "runs" / "failures.csv").open(encoding="utf-8-sig") as f:
        failures = list(csv.DictReader(f))
    assert [(r["Ref"], r["Channel"], r["_code"]) for r in failures] == [
        ("A2", "Fax", a2.error_code)
    ]
    assert "--retry-failed" in failures[0]["_hint"]


def test_invalid_rows_are_rejected_and_never_sent(project: Path) -> None:
    write_source(project, [("B1", "Email", "Ok"), ("B2", "Email", ""), ("B3", "Email", "Ok")])
    code, summary = go(project)
    assert code == 1 and summary["this_run"]["rejected"] == 1
    assert store(project).cases_by_external_id() == {"B1": 1, "B3": 1}
    with Ledger.open(project / "runs" / "ledger.sqlite", readonly=True) as ledger:
        b2 = ledger.get("B2", "case")
    assert b2 is not None and str(b2.state) == "rejected"
    assert b2.issues is not None and "missing-value" in b2.issues
    with (project / "runs" / "failures.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert [(r["Ref"], r["_code"], r["_info"]) for r in rows] == [("B2", "rejected", b2.issues)]


def test_a_repeated_key_is_rejected_and_the_first_row_is_loaded(project: Path) -> None:
    write_source(project, [("D1", "Email", "First"), ("D2", "Email", "Ok"), ("D1", "Web", "Copy")])
    spec = load_spec(project / "spec.yaml")
    result = run(spec, RunOptions(ledger=project / "runs" / "ledger.sqlite", settings=FAST))
    assert (result.exit_code, result.status) == (1, "some-rejected")
    assert result.summary["this_run"]["duplicate_keys"] == 1
    assert "1 rejected (1 repeating an earlier row's key, not in the ledger)" in result.lines[0]
    assert store(project).cases_by_external_id() == {"D1": 1, "D2": 1}
    with Ledger.open(project / "runs" / "ledger.sqlite", readonly=True) as ledger:
        d1 = ledger.get("D1", "case")
    assert d1 is not None and d1.row == 2  # the entry is the first row's


def test_a_changed_source_sends_new_keys_and_reports_changed_ones(project: Path) -> None:
    write_source(project, [("C1", "Email", "One"), ("C2", "Email", "Two")])
    assert go(project)[0] == 0
    write_source(
        project, [("C1", "Email", "One"), ("C2", "Email", "Changed"), ("C3", "Web", "New")]
    )
    code, summary = go(project)
    assert code == 0 and summary["requests"] == 1
    assert store(project).cases_by_external_id() == {"C1": 1, "C2": 1, "C3": 1}
    assert summary["ledger_counts"]["changed"] == 1


def test_limit_sends_some_rows_and_the_next_run_the_rest(project: Path) -> None:
    code, summary = go(project, limit=7)
    assert (code, summary["requests"]) == (0, 7)
    assert store(project).case_count() == 7
    code, summary = go(project)
    assert (code, summary["requests"], summary["rows_read"]) == (0, 23, 23)
    assert store(project).case_count() == 30


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_cli_run_status_and_results(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = str(project / "runs" / "ledger.sqlite")
    code, out, err = cli(capsys, "run", str(project / "spec.yaml"), "--ledger", ledger)
    assert code == 0
    assert "No --target: sending to an embedded sandbox" in err
    assert "30 succeeded, 0 failed, 0 rejected" in out
    code, out, _ = cli(capsys, "status", ledger, "--json")
    report = json.loads(out)
    assert code == 0
    assert {
        k: report[k] for k in ("rows", "succeeded", "failed", "rejected", "pending", "in_doubt")
    } == {"rows": 30, "succeeded": 30, "failed": 0, "rejected": 0, "pending": 0, "in_doubt": 0}
    code, out, _ = cli(capsys, "status", ledger)
    assert "succeeded 30, failed 0, rejected 0, pending 0, in doubt 0" in out
    code, out, _ = cli(capsys, "results", ledger)
    lines = out.splitlines()
    assert lines[0] == "key,row,step,state,target_id,error_code,error_info"
    assert len(lines) == 31 and lines[1].startswith("R000,2,case,succeeded,")


def test_status_of_a_missing_ledger_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "status", str(tmp_path / "nope.sqlite"))
    assert code == 2
    assert "no ledger here; `loader run` creates one" in err


TWO_STEP = """\
spec: 1
name: two
source: {file: people.csv, key: Ref}
target: icasework
steps:
  - id: account
    operation: createaccount
    fields:
      Type: {value: CTAX}
      ExternalAccountId: {from: Ref, required: true}
  - id: case
    operation: createcase
    fields:
      Type: {value: Complaint}
      ExternalId: {from: Ref, required: true}
      Customer.Surname: {from: Surname, required: true}
      ExternalAccountId: {from_step: account}
"""


def test_a_two_step_row_sends_the_case_with_the_account_id(project: Path) -> None:
    (project / "spec.yaml").write_text(TWO_STEP, encoding="utf-8")
    write_source(project, [("T1", "Email", "One"), ("T2", "Email", "Two")])
    code, summary = go(project)
    assert code == 0 and summary["requests"] == 4
    with Ledger.open(project / "runs" / "ledger.sqlite", readonly=True) as ledger:
        account = ledger.get("T1", "account")
    assert account is not None and account.target_id
    case = store(project).find_cases(external_id="T1")[0]
    assert case["fields"]["ExternalAccountId"] == account.target_id


UPLOAD = """\
spec: 1
name: upload
source: {file: people.csv, key: Ref}
target: icasework
steps:
  - id: load
    operation: uploaddata
    upload_type: UPLOAD_TYPE
    fields:
      Id: {from: Ref, required: true}
      ExternalId: {from: Ref, required: true}
      Type: {value: Complaint}
      Surname: {from: Surname, required: true}
"""


@pytest.mark.parametrize("kind", ["customers", "cases"])
def test_uploaddata_goes_in_chunks_with_an_outcome_per_row(project: Path, kind: str) -> None:
    (project / "spec.yaml").write_text(UPLOAD.replace("UPLOAD_TYPE", kind), encoding="utf-8")
    settings = Settings(concurrency=4, grace=0.1, upload_limit=7)
    spec = load_spec(project / "spec.yaml")
    result = run(spec, RunOptions(ledger=project / "runs" / "ledger.sqlite", settings=settings))
    assert result.exit_code == 0, result.lines
    assert result.summary["requests"] == 5  # 30 rows in chunks of at most 7
    with Ledger.open(project / "runs" / "ledger.sqlite", readonly=True) as ledger:
        entries = list(ledger.entries())
    assert len(entries) == 30 and {str(e.state) for e in entries} == {"succeeded"}
    if kind == "cases":
        assert store(project).cases_by_external_id() == {f"R{i:03d}": 1 for i in range(30)}
    else:
        assert len(store(project).customers()) == 30


ACCOUNTS = """\
spec: 1
name: accounts
source: {file: people.csv, key: Ref}
target: icasework
steps:
  - id: account
    operation: createaccount
    fields:
      Type: {value: CTAX}
      ExternalAccountId: {from: Ref, required: true}
"""


def test_a_crash_left_create_without_look_up_stops_until_told_to_resend(project: Path) -> None:
    (project / "spec.yaml").write_text(ACCOUNTS, encoding="utf-8")
    write_source(project, [("D1", "Email", "One"), ("D2", "Email", "Two")])
    assert go(project, limit=0)[0] == 0  # planned, nothing sent
    with Ledger.open(project / "runs" / "ledger.sqlite") as ledger:
        ledger.mark_sending([("D2", "account")])  # as a crash right after the claim leaves it
    spec = load_spec(project / "spec.yaml")
    options = RunOptions(ledger=project / "runs" / "ledger.sqlite", settings=FAST)
    result = run(spec, options)
    assert result.exit_code == 3 and result.summary["requests"] == 0
    assert result.lines[-1].startswith(
        "Stopped: 1 in doubt (sent, answer unknown, not settled by a look-up): "
    )
    assert "D2 (account, row 3)" in result.lines[-1]
    resend = Settings(concurrency=8, grace=0.0, in_doubt="resend")
    result = run(spec, RunOptions(ledger=project / "runs" / "ledger.sqlite", settings=resend))
    assert result.exit_code == 0 and result.summary["requests"] == 2
    assert len(store(project).accounts()) == 2


def test_in_doubt_stop_lists_even_rows_a_look_up_could_settle(project: Path) -> None:
    write_source(project, [("S1", "Email", "One"), ("S2", "Email", "Two")])
    assert go(project, limit=0)[0] == 0  # planned, nothing sent
    with Ledger.open(project / "runs" / "ledger.sqlite") as ledger:
        ledger.mark_sending([("S1", "case")])  # as a crash right after the claim leaves it
    stop = Settings(concurrency=8, grace=0.0, in_doubt="stop")
    spec = load_spec(project / "spec.yaml")
    result = run(spec, RunOptions(ledger=project / "runs" / "ledger.sqlite", settings=stop))
    assert (result.exit_code, result.summary["requests"]) == (3, 0)  # not even a look-up
    assert "S1 (case, row 2)" in result.lines[-1]
    result = run(spec, RunOptions(ledger=project / "runs" / "ledger.sqlite", settings=FAST))
    assert result.exit_code == 0  # the default looks S1 up (absent), then sends both
    assert store(project).cases_by_external_id() == {"S1": 1, "S2": 1}


def test_a_run_embedded_in_another_thread_works_without_signal_handlers(project: Path) -> None:
    import threading

    results: list[tuple[int, dict[str, Any]]] = []
    worker = threading.Thread(target=lambda: results.append(go(project)))
    worker.start()
    worker.join(timeout=60)
    assert results and results[0][0] == 0
    assert store(project).case_count() == 30
