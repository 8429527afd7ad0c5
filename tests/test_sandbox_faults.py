"""The sandbox's fault switches, concurrency, settings, tenant files and command line."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest
from click.testing import CliRunner

from loader.cli import cli
from loader.errors import LoaderError
from loader.sandbox import Sandbox, SandboxConfig, load_tenant
from loader.sandbox.faults import TokenBucket
from loader.sandbox.testing import assertion, client, token_answer

CASE = {"Type": "Complaint", "ExternalId": "F-1", "Format": "json"}


def test_fail_rate_answers_before_applying(tmp_path: Path) -> None:
    with Sandbox(SandboxConfig(fail_rate=1.0, store=tmp_path / "s.sqlite")) as sb, client(sb) as c:
        answer = c.post("/createcase", json=CASE)
        assert (answer.status_code, answer.headers["Retry-After"]) == (503, "0")
        assert c.get("/getvaluelist", params={"Name": "CaseType"}).status_code == 200  # reads
        assert sb.store.case_count() == 0
        assert sb.store.requests()[-2]["fault"] == "fail"


def test_fail_status_500_has_no_retry_after(tmp_path: Path) -> None:
    config = SandboxConfig(fail_rate=1.0, fail_status=500, store=tmp_path / "s.sqlite")
    with Sandbox(config) as sb, client(sb) as c:
        answer = c.post("/createcase", json=CASE)
    assert answer.status_code == 500
    assert "Retry-After" not in answer.headers


def test_drop_rate_applies_then_closes_without_an_answer(tmp_path: Path) -> None:
    with Sandbox(SandboxConfig(drop_rate=1.0, store=tmp_path / "s.sqlite")) as sb, client(sb) as c:
        with pytest.raises(httpx2.RemoteProtocolError):
            c.post("/createcase", json=CASE)
        # The record exists although the client got no answer: the exactly-once hazard.
        assert sb.store.cases_by_external_id() == {"F-1": 1}
        found = c.get("/getcasedetails", params={"ExternalId": "F-1", "Format": "json"})
        assert found.json()["CaseDetails.ExternalId"] == "F-1"
        dropped = [r for r in sb.store.requests() if r["endpoint"] == "createcase"]
        assert [(r["status"], r["fault"]) for r in dropped] == [(None, "drop")]


def test_seed_makes_decisions_reproducible(tmp_path: Path) -> None:
    def statuses(run: int) -> list[int | None]:
        config = SandboxConfig(fail_rate=0.5, seed=42, store=tmp_path / f"{run}.sqlite")
        with Sandbox(config) as sb, client(sb) as c:
            return [c.post("/createcase", json=CASE).status_code for _ in range(20)]

    first = statuses(1)
    assert first == statuses(2)
    assert {200, 503} == set(first)


def test_latency_delays_every_answer(tmp_path: Path) -> None:
    with Sandbox(SandboxConfig(latency_ms=150, store=tmp_path / "s.sqlite")) as sb, client(sb) as c:
        started = time.perf_counter()
        c.get("/getvaluelist", params={"Name": "CaseType"})
        elapsed = time.perf_counter() - started
    assert elapsed >= 0.15


def test_rate_limit_answers_429_with_headers(tmp_path: Path) -> None:
    config = SandboxConfig(rate=1, burst=2, store=tmp_path / "s.sqlite")
    with Sandbox(config) as sb, client(sb) as c:
        answers = [c.get("/getvaluelist", params={"Name": "CaseType"}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    for answer, remaining in zip(answers, ["1", "0", "0"], strict=True):
        assert answer.headers["x-ratelimit-remaining"] == remaining
        assert answer.headers["x-ratelimit-replenish-rate"] == "1"
        assert answer.headers["x-ratelimit-burst-capacity"] == "2"
        assert answer.headers["x-ratelimit-requested-tokens"] == "1"
    assert answers[2].headers["Retry-After"] == "1"
    assert answers[2].headers["X-Application-Error-Code"] == "9029"


def test_token_endpoint_takes_no_token_from_the_bucket(tmp_path: Path) -> None:
    with Sandbox(SandboxConfig(rate=1, burst=1, store=tmp_path / "s.sqlite")) as sb:
        answers = [token_answer(sb, assertion(sb)) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].headers["x-ratelimit-requested-tokens"] == "0"


@pytest.mark.parametrize(
    ("steps", "allowed"),
    [([0.0, 0.0, 0.0], [True, True, False]), ([0.0, 0.0, 0.5, 0.5], [True, True, False, True])],
)
def test_token_bucket_refills_at_the_rate(steps: list[float], allowed: list[bool]) -> None:
    now = [100.0]
    bucket = TokenBucket(rate=1.0, burst=2.0, clock=lambda: now[0])
    seen = []
    for step in steps:
        now[0] += step
        seen.append(bucket.take().allowed)
    assert seen == allowed


def test_concurrent_creates_do_not_corrupt_the_store(tmp_path: Path) -> None:
    async def create_all(sb: Sandbox, headers: dict[str, str]) -> list[str]:
        limits = httpx2.Limits(max_connections=32, max_keepalive_connections=32)
        async with httpx2.AsyncClient(base_url=sb.base, limits=limits, headers=headers) as c:
            answers = await asyncio.gather(*(
                c.post("/createcase?db=demo", json={**CASE, "ExternalId": f"C-{n}"})
                for n in range(300)
            ))  # fmt: skip
        return [a.json()["createcaseresponse"]["caseid"] for a in answers]

    with Sandbox(SandboxConfig(store=tmp_path / "s.sqlite")) as sb, client(sb) as c:
        ids = asyncio.run(create_all(sb, {"Authorization": c.headers["Authorization"]}))
        assert len(set(ids)) == 300
        assert sb.store.case_count() == 300
        assert len(sb.store.cases_by_external_id()) == 300
        assert sb.store.count_requests(endpoint="createcase", status=200) == 300
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_temporary_store_is_removed_at_stop() -> None:
    sb = Sandbox().start()
    path = sb.store_path
    assert path.exists() and sb.url == f"{sb.base}/?db=demo"
    sb.stop()
    assert not path.parent.exists()


def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with Sandbox(SandboxConfig(store=tmp_path / "a.sqlite")) as first:
        port = int(first.base.rsplit(":", 1)[1])
        with pytest.raises(LoaderError, match=rf"cannot listen on 127.0.0.1:{port}"):
            Sandbox(SandboxConfig(port=port, store=tmp_path / "b.sqlite")).start()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"fail_rate": 1.5}, "fail_rate must be between 0 and 1, got 1.5"),
        ({"fail_status": 404}, "fail_status must be a 5xx status, got 404"),
        ({"burst": 5}, "burst needs a rate, and must be 1 or more"),
        ({"rate": 0}, "rate must be above 0, got 0"),
        ({"api_key": ""}, "api_key must not be empty"),
    ],
)
def test_config_is_checked(settings: dict[str, object], message: str) -> None:
    with pytest.raises(LoaderError) as caught:
        SandboxConfig(**settings)  # type: ignore[arg-type]  # the table mixes value types
    assert str(caught.value) == f"sandbox settings are wrong: {message}"


def test_custom_tenant(tmp_path: Path) -> None:
    tenant = tmp_path / "tenant.yaml"
    tenant.write_text(
        "case_types: [Repair]\naccount_types: [RENT]\n"
        "value_lists: {Priority: [High, Low]}\nchecked_fields: {Priority: Priority}\n"
        "reports: [{id: 9, name: Repairs, fields: [CaseDetails.CaseId, Priority]}]\n"
    )
    config = SandboxConfig(tenant=tenant, store=tmp_path / "s.sqlite")
    with Sandbox(config) as sb, client(sb) as c:
        ok = c.post("/createcase", json={"Type": "Repair", "Priority": "High", "Format": "json"})
        bad = c.post("/createcase", json={"Type": "Repair", "Priority": "Urgent"})
        complaint = c.post("/createcase", json={"Type": "Complaint"})
        report = c.get("/getreport", params={"ReportId": "9", "Format": "json"})
    case_id = ok.json()["createcaseresponse"]["caseid"]
    assert bad.headers["X-Application-Error-Info"] == "Invalid value 'Urgent' for Priority"
    assert complaint.headers["X-Application-Error-Info"] == "Invalid case type 'Complaint'"
    assert report.json() == [{"CaseDetails.CaseId": case_id, "Priority": "High"}]


def test_bad_tenant_file_lists_every_problem(tmp_path: Path) -> None:
    tenant = tmp_path / "tenant.yaml"
    tenant.write_text("case_types: []\nchecked_fields: {X: Nope}\ncolour: red\n")
    with pytest.raises(LoaderError) as caught:
        load_tenant(tenant)
    assert str(caught.value) == (
        f"{tenant}: tenant file is wrong:\n"
        "  unknown key 'colour' (known: account_types, case_types, checked_fields, reports,"
        " value_lists)\n"
        "  case_types: at least one case type is needed\n"
        "  checked_fields.X: no value list named 'Nope'"
    )


def test_default_tenant_matches_the_sample_data() -> None:
    tenant = load_tenant()
    assert tenant.case_types == (
        "Complaint", "Compliment", "Enquiry", "FOI request", "Information request",
    )  # fmt: skip
    assert tenant.account_types == ("CTAX", "NNDR", "HB", "RENT")
    assert tenant.value_list("RequestMethod") == (
        "Email", "Phone", "Web", "Letter", "In person", "Social media",
    )  # fmt: skip


def test_cli_sandbox_rejects_bad_options() -> None:
    result = CliRunner().invoke(cli, ["sandbox", "--fail-rate", "2"])
    assert result.exit_code == 2
    assert "Invalid value for '--fail-rate'" in result.output


def test_cli_sandbox_serves_until_interrupted(tmp_path: Path) -> None:
    store = tmp_path / "cli.sqlite"
    command = [sys.executable, "-m", "loader", "sandbox", "--port", "0", "--store", str(store)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Sandbox listening on http://127.0.0.1:")
        base = first.rsplit(" ", 1)[1].strip()
        lines = [proc.stdout.readline().strip() for _ in range(6)]
        assert lines[0] == f"target:     {base}/?db=demo"
        assert lines[4] == f"store:      {store}"
        answer = httpx2.get(f"{base}/getvaluelist?db=demo&Name=CaseType")
        assert answer.status_code == 403
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert out.strip().endswith("Sandbox stopped.")
    assert proc.returncode == 0
