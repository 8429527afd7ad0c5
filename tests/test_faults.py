"""`loader run --target` against a real sandbox with its fault switches on (loopback HTTP)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import httpx2
import pytest

from loader import auth
from loader.cli import main
from loader.ledger import Ledger
from loader.sandbox import Sandbox, SandboxConfig

KEY, SECRET = "fault-key", "fault-secret-7f3a9c"
SPEC = """\
spec: 1
name: faults
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


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    with (tmp_path / "people.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["Ref", "Channel", "Surname"])
        writer.writerows((f"F{i:03d}", "Phone", f"Name{i}") for i in range(60))
    return tmp_path


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADER_API_KEY", KEY)
    monkeypatch.setenv("LOADER_API_SECRET", SECRET)


def sandbox(tmp_path: Path, **faults: Any) -> Sandbox:
    config = SandboxConfig(
        api_key=KEY, api_secret=SECRET, store=tmp_path / "store.sqlite", seed=11, **faults
    )
    return Sandbox(config)


def loader_run(
    capsys: pytest.CaptureFixture[str], project: Path, url: str, *extra: str
) -> tuple[int, str, str]:
    args = [
        "run",
        str(project / "spec.yaml"),
        "--target",
        url,
        "--ledger",
        str(project / "runs" / "ledger.sqlite"),
        "--concurrency",
        "8",
        *extra,
    ]
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def assert_exactly_once(project: Path, box: Sandbox, keys: int = 60) -> None:
    assert box.store.cases_by_external_id() == {f"F{i:03d}": 1 for i in range(keys)}
    with Ledger.open(project / "runs" / "ledger.sqlite", readonly=True) as ledger:
        entries = list(ledger.entries())
    assert {str(e.state) for e in entries} == {"succeeded"}
    ids = {str(c["case_id"]) for c in box.store.cases()}
    assert {e.target_id for e in entries} == ids  # the ledger agrees with the store


@pytest.mark.parametrize(
    "faults",
    [
        {"drop_rate": 0.25},  # applied, then no answer: in doubt, settled by look-up
        {"fail_rate": 0.3},  # 503 before applying: retried
        {"fail_rate": 0.3, "fail_status": 500},  # 500 on a create: in doubt, looked up
    ],
    ids=["drop", "fail-503", "fail-500"],
)
def test_faults_end_with_every_case_exactly_once(
    project: Path, env: None, capsys: pytest.CaptureFixture[str], faults: dict[str, Any]
) -> None:
    with sandbox(project, latency_ms=2, **faults) as box:
        code, out, _ = loader_run(capsys, project, box.url)
        assert code == 0, out
        assert_exactly_once(project, box)


def test_a_429_storm_completes_and_the_throttle_slows_down(
    project: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with sandbox(project, rate=40, burst=4) as box:
        code, out, _ = loader_run(capsys, project, box.url, "--concurrency", "16")
        assert code == 0, out
        assert_exactly_once(project, box)
        assert box.store.count_requests("createcase", 429) > 0
        ok = box.store.count_requests("createcase", 200)
    assert ok == 60


def test_short_tokens_are_refreshed_and_no_secret_or_token_leaks(
    project: Path, env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    issued: list[str] = []
    read = auth.ICaseworkJWT._read

    def spy(self: auth.ICaseworkJWT, response: httpx2.Response) -> tuple[str, float]:
        token, expiry = read(self, response)
        issued.append(token)
        return token, expiry

    monkeypatch.setattr(auth.ICaseworkJWT, "_read", spy)
    log = project / "attempts.jsonl"
    with sandbox(project, token_ttl=1, latency_ms=5) as box:
        code, out, err = loader_run(
            capsys, project, box.url, "--rate", "30", "--log-file", str(log)
        )
        assert code == 0, out
        assert_exactly_once(project, box)
    assert len(issued) >= 2  # two seconds of sending with one-second tokens
    texts = [out, err, log.read_text(encoding="utf-8")]
    files = [p for p in (project / "runs").iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"ledger.sqlite", "results.csv", "run-summary.json"}
    blobs = [p.read_bytes() for p in files]
    for secret in [SECRET, *issued]:
        assert not any(secret in text for text in texts)
        assert not any(secret.encode() in blob for blob in blobs)


def test_a_wrong_secret_stops_with_a_clear_message_and_sends_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOADER_API_KEY", KEY)
    monkeypatch.setenv("LOADER_API_SECRET", "not-the-secret")
    with sandbox(project) as box:
        code, out, err = loader_run(capsys, project, box.url)
        assert code == 1
        assert "19002 invalid_grant" in err and "LOADER_API_SECRET" in err
        assert "not-the-secret" not in out + err
        assert box.store.count_requests("createcase") == 0


UPLOAD_CASES = """\
spec: 1
name: faults-upload
source: {file: people.csv, key: Ref}
target: icasework
steps:
  - id: load
    operation: uploaddata
    upload_type: cases
    fields:
      ExternalId: {from: Ref, required: true}
      Type: {value: Complaint}
      Surname: {from: Surname, required: true}
"""


def test_a_dropped_chunk_of_cases_is_settled_row_by_row(
    project: Path, env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "spec.yaml").write_text(UPLOAD_CASES, encoding="utf-8")
    with sandbox(project, drop_rate=0.5) as box:
        code, out, _ = loader_run(capsys, project, box.url, "--chunk-size", "10")
        assert code == 0, out
        assert_exactly_once(project, box)
        log = box.store.requests()
    dropped = [r for r in log if r["endpoint"] == "uploaddata" and r["fault"] == "drop"]
    assert dropped  # some chunks were applied without an answer, yet no case is there twice


@pytest.mark.usefixtures("env")
def test_an_error_budget_stops_a_run_the_target_refuses_row_after_row(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every row has a contact method outside the tenant's value list: the target says no to
    # each. With --max-failures 5 the run stops early instead of spending all 60 requests.
    text = (project / "people.csv").read_text(encoding="utf-8").replace(",Phone,", ",Fax,")
    (project / "people.csv").write_text(text, encoding="utf-8")
    with sandbox(project) as box:
        code, out, _ = loader_run(
            capsys, project, box.url, "--max-failures", "5", "--concurrency", "1"
        )
        assert code == 3, out
        assert "Stopped: 5 rows failed in this run (--max-failures)" in out
        assert box.store.count_requests("createcase") == 5
        assert box.store.case_count() == 0
        # The budget is per run: fixing the cause and rerunning continues where it stopped.
        text = (project / "people.csv").read_text(encoding="utf-8").replace(",Fax,", ",Phone,")
        (project / "people.csv").write_text(text, encoding="utf-8")
        code, out, _ = loader_run(capsys, project, box.url, "--retry-failed")
        assert code == 0, out
        assert_exactly_once(project, box)


@pytest.mark.usefixtures("env")
def test_a_target_that_keeps_failing_stops_the_run_and_fails_no_row(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every write answered 503 (not applied): an outage, not bad data. The run gives up after
    # its retries with every row pending, and a rerun once the target is back loads them all.
    with sandbox(project, fail_rate=1.0) as box:
        code, out, _ = loader_run(capsys, project, box.url)
        assert code == 3, out
        assert "Stopped: the target kept failing (HTTP 503" in out
        assert box.store.case_count() == 0
    with Ledger.open(project / "runs" / "ledger.sqlite", readonly=True) as ledger:
        counts = ledger.counts()
    assert (counts.states["failed"], counts.states["pending"], counts.in_doubt) == (0, 60, 0)
    with sandbox(project) as box:  # the same store: the target is back
        code, out, _ = loader_run(capsys, project, box.url)
        assert code == 0, out
        assert_exactly_once(project, box)


def test_credentials_from_a_file_win_over_the_environment(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOADER_API_KEY", KEY)
    monkeypatch.setenv("LOADER_API_SECRET", "a-stale-secret")
    secrets_file = project / "credentials.env"
    secrets_file.write_text(f"# the UAT key pair\nLOADER_API_SECRET='{SECRET}'\n", encoding="utf-8")
    with sandbox(project) as box:
        code, out, err = loader_run(capsys, project, box.url, "--credentials", str(secrets_file))
        assert code == 0, err
        assert_exactly_once(project, box)
    assert SECRET not in out + err


def test_a_malformed_credentials_file_names_the_line_and_no_value(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets_file = project / "credentials.env"
    secrets_file.write_text(f"LOADER_API_KEY={KEY}\n{SECRET}\n", encoding="utf-8")
    code, out, err = loader_run(
        capsys, project, "http://127.0.0.1:9/?db=demo", "--credentials", str(secrets_file)
    )
    assert code == 2
    assert f"{secrets_file} line 2: expected NAME=value" in err
    assert SECRET not in out + err and KEY not in out + err.replace(str(project), "")
