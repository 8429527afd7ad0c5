"""kill -9 at random (seeded) moments, rerun until exit 0: every case exactly once.

A `loader run` subprocess sends a few hundred rows to a sandbox with latency (in this
process, on its own thread) and is killed with SIGKILL while requests are in flight, several
times. The ledger then holds rows in `sending`; each rerun must settle them by look-up before
sending anything, so the store ends with each ExternalId exactly once and the ledger agrees.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from loader.ledger import Ledger
from loader.sandbox import Sandbox, SandboxConfig

ROWS = 300
KEY, SECRET = "kill-key", "kill-secret-0f5e2a7c9b1d4e8f6a3c0b9d"
SPEC = """\
spec: 1
name: killnine
source: {file: rows.csv, key: Ref}
target: icasework
steps:
  - id: case
    operation: createcase
    fields:
      Type: {value: Complaint}
      ExternalId: {from: Ref, required: true}
      Customer.Surname: {from: Surname, required: true}
"""


def launch(folder: Path, url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LOADER_API_KEY": KEY, "LOADER_API_SECRET": SECRET}
    args = [
        sys.executable,
        "-m",
        "loader",
        "run",
        str(folder / "spec.yaml"),
        "--target",
        url,
        "--ledger",
        str(folder / "ledger.sqlite"),
        "--quiet",
        "--concurrency",
        "8",
    ]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def report(box: Sandbox) -> list[str]:
    """Every ExternalId as getreport shows it (the read-back a migration reconciles with)."""
    with httpx2.Client() as client:
        token = client.post(
            f"{box.base}/token?db=demo",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": _assertion(f"{box.base}/token?db=demo"),
            },
        ).json()["access_token"]
        answer = client.get(
            f"{box.base}/getreport",
            params={"db": "demo", "ReportId": "1", "Format": "json"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 200
    return [row["CaseDetails.ExternalId"] for row in json.loads(answer.text)]


def _assertion(aud: str) -> str:
    import jwt

    return jwt.encode({"iss": KEY, "aud": aud, "iat": int(time.time())}, SECRET, algorithm="HS256")


@pytest.mark.timeout(90)
def test_kill_nine_then_rerun_until_done_sends_each_row_exactly_once(tmp_path: Path) -> None:
    keys = make_project(tmp_path, ROWS)
    rng = random.Random(20261123)
    config = SandboxConfig(
        api_key=KEY,
        api_secret=SECRET,
        store=tmp_path / "store.sqlite",
        latency_ms=30,
        jitter_ms=20,
        seed=3,
    )
    killed = 0
    with Sandbox(config) as box:
        for _ in range(4):
            proc = launch(tmp_path, box.url)
            # Kill once sending has started (the store saw requests), at a seeded moment.
            before = box.store.count_requests("createcase")
            deadline = time.monotonic() + 20
            while box.store.count_requests("createcase") == before and proc.poll() is None:
                assert time.monotonic() < deadline, "the run never started sending"
                time.sleep(0.02)
            time.sleep(rng.uniform(0.05, 0.6))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            proc.communicate()
        codes = []
        for _ in range(5):
            proc = launch(tmp_path, box.url)
            _out, err = proc.communicate(timeout=60)
            codes.append(proc.returncode)
            if proc.returncode == 0:
                break
        assert codes[-1] == 0, (codes, err.decode())
        assert killed >= 3
        assert box.store.cases_by_external_id() == dict.fromkeys(keys, 1)
        shown = report(box)
        assert sorted(shown) == keys  # each ExternalId exactly once in the read-back
        ids = {str(c["case_id"]): c for c in box.store.cases()}
    with Ledger.open(tmp_path / "ledger.sqlite", readonly=True) as ledger:
        entries = list(ledger.entries())
    assert len(entries) == ROWS and {str(e.state) for e in entries} == {"succeeded"}
    assert {e.target_id for e in entries} == set(ids)  # the ledger agrees with the store


def make_project(folder: Path, rows: int) -> list[str]:
    (folder / "spec.yaml").write_text(SPEC, encoding="utf-8")
    keys = [f"K{i:04d}" for i in range(rows)]
    with (folder / "rows.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["Ref", "Surname"])
        writer.writerows((k, f"S{k}") for k in keys)
    return keys


def wait_for_sending(box: Sandbox, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while box.store.count_requests("createcase") < 20 and proc.poll() is None:
        assert time.monotonic() < deadline, "the run never started sending"
        time.sleep(0.02)


@pytest.mark.parametrize("presses", [1, 2])
@pytest.mark.timeout(60)
def test_ctrl_c_stops_then_a_rerun_finishes_exactly_once(tmp_path: Path, presses: int) -> None:
    keys = make_project(tmp_path, 200)
    config = SandboxConfig(
        api_key=KEY, api_secret=SECRET, store=tmp_path / "store.sqlite", latency_ms=40
    )
    with Sandbox(config) as box:
        proc = launch(tmp_path, box.url)
        wait_for_sending(box, proc)
        for _ in range(presses):
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err.decode()
        assert "Interrupted: finishing requests in flight" in err.decode()
        with Ledger.open(tmp_path / "ledger.sqlite", readonly=True) as ledger:
            counts = ledger.counts()
        assert counts.states["succeeded"] < 200
        if presses == 1:  # requests in flight were waited for and recorded
            assert counts.in_doubt == 0
        rerun = launch(tmp_path, box.url)
        _, err = rerun.communicate(timeout=30)
        assert rerun.returncode == 0, err.decode()
        assert box.store.cases_by_external_id() == dict.fromkeys(keys, 1)
