"""Tests for loader.ledger: states, plan decisions, resume, crash safety, file handling."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loader.errors import LedgerError
from loader.ledger import (
    SCHEMA_VERSION,
    TERMINAL,
    Decision,
    Ledger,
    Outcome,
    Plan,
    State,
)
from loader.ledger import schema as ledger_schema
from loader.ledger import store as ledger_store

ROOT = Path(__file__).resolve().parents[1]


def h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def plan(key: str = "K1", *, step: str = "case", row: int = 2, payload: str | None = "v1",
         offset: int | None = None, issues: str | None = None) -> Plan:  # fmt: skip
    """A Plan for `key`; payload None means a rejected row."""
    return Plan(
        key=key,
        step=step,
        row=row,
        offset=offset,
        payload_hash=h(payload) if payload is not None else None,
        lookup=key if payload is not None else None,
        rejected=payload is None,
        issues=issues if payload is not None else (issues or "format:Customer.Email@F2"),
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "runs" / "ledger.sqlite") as opened:
        yield opened


def reach(ledger: Ledger, state: State, key: str = "K1", payload: str | None = "v1") -> None:
    """Bring (key, case) to `state` through the public protocol."""
    ledger.plan([plan(key, payload=payload)])
    if state in (State.PENDING, State.REJECTED):
        return
    ledger.mark_sending([(key, "case")])
    if state is State.SUCCEEDED:
        ledger.mark_succeeded(key, "case", target_id="C-1", http_status=200)
    elif state is State.FAILED:
        ledger.mark_failed(key, "case", http_status=422, code="InvalidValue", info="Type")


# -- opening -------------------------------------------------------------------------


def test_open_creates_dirs_and_a_wal_file_at_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "ledger.sqlite"
    with Ledger.open(path):
        pass
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    with Ledger.open(path) as again:  # reopening keeps the schema and migrates nothing
        assert again.counts().entries == 0


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    Ledger.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    for readonly in (False, True):
        with pytest.raises(LedgerError) as info:
            Ledger.open(path, readonly=readonly)
        assert str(info.value) == (
            f"{path}: made by a newer loader (ledger schema {SCHEMA_VERSION + 1}, this loader"
            f" knows up to {SCHEMA_VERSION}); upgrade loader to use this ledger"
        )


@pytest.mark.parametrize("readonly", [False, True])
def test_a_file_that_is_not_sqlite_is_refused_by_name(tmp_path: Path, readonly: bool) -> None:
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"LegacyRef,Email\nR1,alice@example.com\n" * 200)
    with pytest.raises(LedgerError) as info:
        Ledger.open(path, readonly=readonly)
    assert str(info.value) == (
        f"{path}: not a loader ledger (not a SQLite file, or damaged: file is not a database);"
        " give another --ledger file or move this one away"
    )


def test_another_sqlite_file_is_not_taken_for_a_ledger(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match=r"other\.db: a SQLite file, but not a loader ledger$"):
        Ledger.open(path)


def test_readonly_needs_an_existing_ledger_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with pytest.raises(LedgerError, match="no ledger here; `loader run` creates one"):
        Ledger.open(path, readonly=True)
    assert not path.exists()
    Ledger.open(path).close()
    with Ledger.open(path, readonly=True) as reader:
        with pytest.raises(LedgerError, match="opened read-only; cannot write"):
            reader.plan([plan()])
        with pytest.raises(LedgerError, match="opened read-only; cannot write"):
            reader.mark_sending([("K1", "case")])


@pytest.mark.skipif(ledger_schema.fcntl is None, reason="no advisory locks on this platform")
def test_a_second_writer_is_refused_but_readers_are_welcome(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger.open(path) as writer:
        writer.plan([plan()])
        with pytest.raises(LedgerError, match="in use by another loader run"):
            Ledger.open(path)
        with Ledger.open(path, readonly=True) as reader:
            assert reader.counts().states["pending"] == 1
    Ledger.open(path).close()  # closing released the lock


# -- plan decisions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "payload", "decision", "state", "changed"),
    [
        (None, "v1", Decision.NEW, State.PENDING, False),
        (None, None, Decision.REJECTED, State.REJECTED, False),
        (State.PENDING, "v1", Decision.PENDING, State.PENDING, False),
        (State.PENDING, "v2", Decision.PENDING, State.PENDING, False),
        (State.PENDING, None, Decision.REJECTED, State.REJECTED, False),
        (State.SENDING, "v1", Decision.IN_DOUBT, State.SENDING, False),
        (State.SENDING, "v2", Decision.IN_DOUBT, State.SENDING, False),
        (State.SENDING, None, Decision.IN_DOUBT, State.SENDING, False),
        (State.SUCCEEDED, "v1", Decision.DONE, State.SUCCEEDED, False),
        (State.SUCCEEDED, "v2", Decision.CHANGED, State.SUCCEEDED, True),
        (State.SUCCEEDED, None, Decision.CHANGED, State.SUCCEEDED, True),
        (State.FAILED, "v1", Decision.DONE, State.FAILED, False),
        (State.FAILED, "v2", Decision.PENDING, State.PENDING, False),
        (State.FAILED, None, Decision.REJECTED, State.REJECTED, False),
        (State.REJECTED, "v1", Decision.REVALIDATED, State.PENDING, False),
        (State.REJECTED, None, Decision.REJECTED, State.REJECTED, False),
    ],
)
def test_plan_decides_from_what_the_ledger_knows(
    ledger: Ledger,
    before: State | None,
    payload: str | None,
    decision: Decision,
    state: State,
    changed: bool,
) -> None:
    if before is not None:
        reach(ledger, before, payload=None if before is State.REJECTED else "v1")
    assert ledger.plan([plan(payload=payload)]) == [decision]
    entry = ledger.get("K1", "case")
    assert entry is not None
    assert (entry.state, entry.changed) == (state, changed)
    counts = ledger.counts()
    assert counts.states[state] == 1 and counts.entries == 1  # the tally followed


def test_a_changed_row_keeps_the_sent_hash_and_unflags_when_it_comes_back(
    ledger: Ledger,
) -> None:
    reach(ledger, State.SUCCEEDED)
    assert ledger.plan([plan(payload="v2")]) == [Decision.CHANGED]
    entry = ledger.get("K1", "case")
    assert entry is not None
    assert (entry.payload_hash, entry.changed, entry.target_id) == (h("v1"), True, "C-1")
    assert ledger.counts().changed == 1
    assert ledger.plan([plan(payload="v1")]) == [Decision.DONE]
    assert ledger.counts().changed == 0


def test_rejected_then_revalidated_keeps_issues_only_while_rejected(ledger: Ledger) -> None:
    ledger.plan([plan(payload=None, issues="required:Customer.Surname@E4")])
    entry = ledger.get("K1", "case")
    assert entry is not None
    assert (entry.state, entry.payload_hash, entry.issues) == (
        State.REJECTED,
        None,
        "required:Customer.Surname@E4",
    )
    assert ledger.plan([plan(payload="fixed")]) == [Decision.REVALIDATED]
    entry = ledger.get("K1", "case")
    assert entry is not None
    assert (entry.state, entry.payload_hash, entry.issues) == (State.PENDING, h("fixed"), None)


def test_plan_refreshes_row_offset_and_lookup_of_a_reordered_file(ledger: Ledger) -> None:
    reach(ledger, State.SUCCEEDED)
    assert ledger.plan([plan(row=90, offset=4096)]) == [Decision.DONE]
    entry = ledger.get("K1", "case")
    assert entry is not None
    assert (entry.row, entry.offset, entry.lookup, entry.target_id) == (90, 4096, "K1", "C-1")


def test_a_rerun_over_an_unchanged_file_writes_nothing(ledger: Ledger) -> None:
    items = [plan("K1", row=2, offset=0), plan("K2", row=3, offset=9, payload=None)]
    ledger.plan(items)
    before = list(ledger.entries())
    assert ledger.plan(items) == [Decision.PENDING, Decision.REJECTED]
    assert list(ledger.entries()) == before  # updated_at included


def test_a_pair_planned_twice_in_one_batch_ends_as_its_last_occurrence(ledger: Ledger) -> None:
    decisions = ledger.plan([plan(payload="v1"), plan(payload=None), plan(payload="v3", row=7)])
    assert decisions == [Decision.NEW, Decision.REJECTED, Decision.REVALIDATED]
    entry = ledger.get("K1", "case")
    assert entry is not None
    assert (entry.state, entry.payload_hash, entry.row) == (State.PENDING, h("v3"), 7)
    assert ledger.counts().states == {
        "pending": 1, "sending": 0, "succeeded": 0, "failed": 0, "rejected": 0,
    }  # fmt: skip


# -- the send protocol -------------------------------------------------------------------


def test_send_succeed_records_the_target_id(ledger: Ledger) -> None:
    ledger.plan([plan()])
    ledger.mark_sending([("K1", "case")])
    entry = ledger.get("K1", "case")
    assert entry is not None and (entry.state, entry.attempts) == (State.SENDING, 1)
    ledger.mark_succeeded("K1", "case", target_id="C-77", http_status=201, payload_hash=h("sent"))
    entry = ledger.get("K1", "case")
    assert entry is not None
    assert (entry.state, entry.target_id, entry.http_status, entry.payload_hash) == (
        State.SUCCEEDED, "C-77", 201, h("sent"),
    )  # fmt: skip
    assert ledger.target_id("K1", "case") == "C-77"
    assert ledger.target_id("K1", "other-step") is None
    assert ledger.get("nope", "case") is None


def test_retry_goes_back_to_pending_due_later_and_keeps_the_error(ledger: Ledger) -> None:
    ledger.plan([plan("K1"), plan("K2", row=3)])
    ledger.mark_sending([("K1", "case")])
    ledger.mark_retry("K1", "case", next_at=1000.0, http_status=503, code=None, info="busy")
    entry = ledger.get("K1", "case")
    assert entry is not None
    assert (entry.state, entry.attempts, entry.next_at, entry.http_status, entry.error_info) == (
        State.PENDING, 1, 1000.0, 503, "busy",
    )  # fmt: skip
    assert [e.key for e in ledger.due(999.0)] == ["K2"]
    assert [e.key for e in ledger.due(1000.0)] == ["K1", "K2"]
    ledger.mark_sending([("K1", "case")])
    entry = ledger.get("K1", "case")
    assert entry is not None and (entry.attempts, entry.next_at) == (2, None)


def test_failed_is_terminal_until_retry_failed(ledger: Ledger) -> None:
    reach(ledger, State.FAILED)
    reach(ledger, State.FAILED, key="K2")
    entry = ledger.get("K1", "case")
    assert entry is not None
    assert (entry.state, entry.error_code, entry.error_info) == (
        State.FAILED, "InvalidValue", "Type",
    )  # fmt: skip
    assert State.FAILED in TERMINAL
    assert list(ledger.due(10**12)) == []
    assert ledger.last_errors() == [("InvalidValue", "Type", 2)]
    assert ledger.retry_failed() == 2
    assert [e.key for e in ledger.due(10**12)] == ["K1", "K2"]
    assert ledger.retry_failed() == 0


def test_release_returns_the_attempt(ledger: Ledger) -> None:
    ledger.plan([plan("K1"), plan("K2")])
    ledger.mark_sending([("K1", "case"), ("K2", "case")])
    ledger.release([("K1", "case"), ("K2", "case")])
    entry = ledger.get("K2", "case")
    assert entry is not None and (entry.state, entry.attempts) == (State.PENDING, 0)


def test_record_outcomes_applies_a_batch_in_one_go(ledger: Ledger) -> None:
    ledger.plan([plan("K1"), plan("K2", row=3), plan("K3", row=4)])
    ledger.mark_sending([("K1", "case"), ("K2", "case"), ("K3", "case")])
    ledger.record_outcomes(
        [
            Outcome.succeeded("K1", "case", target_id="C-1", http_status=200),
            Outcome.failed("K2", "case", http_status=400, code="MissingField", info="Type"),
            Outcome.retry("K3", "case", next_at=5.0, http_status=429, code=None, info=None),
        ]
    )
    assert [(e.key, e.state) for e in ledger.entries()] == [
        ("K1", State.SUCCEEDED), ("K2", State.FAILED), ("K3", State.PENDING),
    ]  # fmt: skip


VERBS = {
    "send": "claim for sending",
    "succeed": "record an outcome for",
    "fail": "record an outcome for",
    "release": "release",
}


@pytest.mark.parametrize(
    ("state", "call", "reason"),
    [
        (State.SENDING, "send", "it is sending, not pending"),
        (State.SUCCEEDED, "send", "it is succeeded, not pending"),
        (State.REJECTED, "send", "it is rejected, not pending"),
        (State.FAILED, "send", "it is failed, not pending"),
        (None, "send", "no such entry"),
        (State.PENDING, "succeed", "it is pending, not sending"),
        (State.SUCCEEDED, "fail", "it is succeeded, not sending"),
        (None, "fail", "no such entry"),
        (State.PENDING, "release", "it is pending, not sending"),
    ],
)
def test_transitions_from_the_wrong_state_are_refused(
    ledger: Ledger, state: State | None, call: str, reason: str
) -> None:
    if state is not None:
        reach(ledger, state, payload=None if state is State.REJECTED else "v1")
    before = ledger.get("K1", "case")
    with pytest.raises(LedgerError) as info:
        if call == "send":
            ledger.mark_sending([("K1", "case")])
        elif call == "succeed":
            ledger.mark_succeeded("K1", "case", target_id="X", http_status=200)
        elif call == "fail":
            ledger.mark_failed("K1", "case", http_status=500, code=None, info=None)
        else:
            ledger.release([("K1", "case")])
    assert str(info.value) == f"{ledger.path}: cannot {VERBS[call]} 'K1' step 'case': {reason}"
    assert ledger.get("K1", "case") == before


def test_empty_batches_are_no_ops(ledger: Ledger) -> None:
    assert ledger.plan([]) == []
    ledger.mark_sending([])
    ledger.record_outcomes([])
    ledger.release([])
    assert ledger.counts().entries == 0


def test_a_plan_batch_larger_than_sqlites_variable_limit(ledger: Ledger) -> None:
    items = [plan(f"K{n:05d}", row=n + 2) for n in range(2500)]
    assert set(ledger.plan(items)) == {Decision.NEW}
    assert set(ledger.plan(items)) == {Decision.PENDING}
    assert ledger.counts().states["pending"] == 2500


def test_sqlite_errors_inside_a_transaction_roll_back_as_ledger_errors(ledger: Ledger) -> None:
    ledger.plan([plan("K1")])
    with pytest.raises(LedgerError, match="cannot write to the ledger: NOT NULL constraint"):
        ledger.plan([plan("K2"), Plan("K3", "case", None, None, "h", None)])  # type: ignore[arg-type]  # a row number is required: the bad input under test
    assert ledger.get("K2", "case") is None  # the whole batch rolled back
    assert ledger.counts().entries == 1


def test_a_batch_claim_is_all_or_none(ledger: Ledger) -> None:
    ledger.plan([plan("K1"), plan("K2", row=3)])
    ledger.mark_sending([("K2", "case")])
    with pytest.raises(LedgerError, match="'K2' step 'case': it is sending, not pending"):
        ledger.mark_sending([("K1", "case"), ("K2", "case")])
    with pytest.raises(LedgerError, match="'K1' step 'case': given twice"):
        ledger.mark_sending([("K1", "case"), ("K1", "case")])
    entry = ledger.get("K1", "case")
    assert entry is not None and (entry.state, entry.attempts) == (State.PENDING, 0)
    assert ledger.counts().in_doubt == 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Outcome("K", "s", State.SENDING), "an outcome ends in succeeded, failed or"),
        (lambda: Outcome("K", "s", State.PENDING), "next_at is required for a retry outcome"),
        (lambda: Outcome("K", "s", State.FAILED, next_at=1.0), "next_at is required for a"),
    ],
)
def test_outcome_checks_itself(make: Callable[[], Outcome], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


# -- resume -------------------------------------------------------------------------------


def test_resume_point_needs_a_checkpoint_for_the_same_source(ledger: Ledger) -> None:
    assert ledger.resume_point("fp1") is None
    ledger.plan([plan("K1", row=2, offset=10), plan("K2", row=3, offset=20)])
    assert ledger.resume_point("fp1") is None  # planned, but never checkpointed
    ledger.mark_checkpoint("fp1", 4, 30)
    assert ledger.resume_point("fp1") == (2, 10)  # the lowest non-terminal entry
    assert ledger.resume_point("fp2") is None  # a changed file: read it all
    for key in ("K1", "K2"):
        ledger.mark_sending([(key, "case")])
        ledger.mark_succeeded(key, "case", target_id="C", http_status=200)
    assert ledger.resume_point("fp1") == (4, 30)  # all terminal: the checkpoint
    ledger.mark_checkpoint("fp2", 2, None)
    assert ledger.resume_point("fp1") is None  # a new source replaced the checkpoint


def test_resume_point_counts_in_doubt_and_a_lagging_checkpoint(ledger: Ledger) -> None:
    ledger.plan([plan("K1", row=5, offset=50), plan("K2", row=9, offset=90)])
    ledger.mark_sending([("K1", "case")])
    ledger.mark_checkpoint("fp", 10, 100)
    assert ledger.resume_point("fp") == (5, 50)  # in doubt counts as not done
    ledger.mark_checkpoint("fp", 3, 30)
    assert ledger.resume_point("fp") == (3, 30)  # rows before 5 not all planned yet


CRASH_CHILD = textwrap.dedent(
    """
    import os, sys
    from loader.ledger import Ledger
    ledger = Ledger.open(sys.argv[1])
    ledger.mark_sending([("K1", "case"), ("K3", "case")])
    os._exit(9)  # killed with the requests in flight: no close, no cleanup
    """
)


def test_a_crash_after_mark_sending_leaves_the_rows_in_doubt(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger.open(path) as ledger:
        ledger.plan([plan("K1", row=2), plan("K2", row=3), plan("K3", row=4)])
    child = subprocess.run(
        [sys.executable, "-c", CRASH_CHILD, str(path)], cwd=ROOT, capture_output=True, timeout=60
    )
    assert child.returncode == 9, child.stderr.decode()
    with Ledger.open(path) as ledger:  # the dead child's lock is gone
        assert [(e.key, e.attempts) for e in ledger.in_doubt()] == [("K1", 1), ("K3", 1)]
        assert ledger.plan([plan("K1", row=2)]) == [Decision.IN_DOUBT]
        assert [e.key for e in ledger.due(10**12)] == ["K2"]
        with pytest.raises(LedgerError, match="it is sending, not pending"):
            ledger.mark_sending([("K1", "case")])
        assert ledger.counts().in_doubt == 2


# -- reading --------------------------------------------------------------------------------


def test_a_reader_reads_while_a_writer_holds_a_transaction(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger.open(path) as writer:
        writer.plan([plan("K1"), plan("K2", row=3)])
        writer.mark_sending([("K1", "case")])
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # a writer mid-transaction (the write lock held)
        other.execute("UPDATE entries SET state = 'succeeded' WHERE key = 'K1'")
        with Ledger.open(path, readonly=True) as reader:
            assert reader.counts().in_doubt == 1  # committed state, no waiting
            assert [e.key for e in reader.in_doubt()] == ["K1"]
        other.execute("COMMIT")
        other.close()
        with Ledger.open(path, readonly=True) as reader:
            assert reader.counts().states["succeeded"] == 1


def test_counts_rows_steps_in_doubt_and_changed(ledger: Ledger) -> None:
    ledger.plan([plan("K1"), plan("K1", step="docs"), plan("K2", row=3), plan("K3", payload=None)])
    ledger.mark_sending([("K1", "case"), ("K2", "case")])
    ledger.mark_succeeded("K1", "case", target_id="C", http_status=200)
    ledger.plan([plan("K1", payload="v2")])
    counts = ledger.counts()
    zero = dict.fromkeys(["pending", "sending", "succeeded", "failed", "rejected"], 0)
    assert counts.to_dict() == {
        "rows": 3,
        "entries": 4,
        "states": {**zero, "pending": 1, "sending": 1, "succeeded": 1, "rejected": 1},
        "steps": {
            "case": {**zero, "sending": 1, "succeeded": 1, "rejected": 1},
            "docs": {**zero, "pending": 1},
        },
        "in_doubt": 1,
        "changed": 1,
    }


def test_entries_come_by_row_and_filter_by_state(ledger: Ledger) -> None:
    ledger.plan([plan("B", row=3), plan("A", row=9), plan("C", row=2, payload=None)])
    assert [e.key for e in ledger.entries()] == ["C", "B", "A"]
    assert [e.key for e in ledger.entries(states=[State.PENDING])] == ["B", "A"]
    assert [e.key for e in ledger.entries(states={State.REJECTED, State.FAILED})] == ["C"]


def test_due_pages_survive_marks_between_items(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_store, "_PAGE", 3)
    ledger.plan([plan(f"K{n:02d}", row=n) for n in range(2, 12)])
    seen = []
    for entry in ledger.due(0.0):
        seen.append(entry.key)
        ledger.mark_sending([(entry.key, "case")])  # the executor claims as it goes
    assert seen == [f"K{n:02d}" for n in range(2, 12)]
    assert ledger.counts().in_doubt == 10


def test_runs_and_attempts_are_recorded_without_secrets(ledger: Ledger) -> None:
    run = ledger.start_run(
        spec_name="complaints", spec_hash=h("spec"), source="complaints.xlsx",
        source_fingerprint="fp", target="https://key:s3cret@tenant.example/api?token=t0k#x",
    )  # fmt: skip
    ledger.plan([plan()])
    ledger.mark_sending([("K1", "case")])
    ledger.record_attempt(run_id=run, key="K1", step="case", started_at=1.0, duration_ms=12.5,
                          outcome="succeeded", http_status=200, code=None)  # fmt: skip
    ledger.finish_run(run, status="completed", summary={"succeeded": 1})
    [info] = ledger.runs()
    assert (info.id, info.spec_name, info.target, info.status, info.summary) == (
        run, "complaints", "https://tenant.example/api", "completed", {"succeeded": 1},
    )  # fmt: skip
    assert info.ended_at is not None and info.ended_at >= info.started_at
    with pytest.raises(LedgerError, match="no run 99 in this ledger"):
        ledger.finish_run(99, status="completed", summary={})
    ledger.close()
    data = b"".join(p.read_bytes() for p in ledger.path.parent.iterdir())
    assert b"s3cret" not in data and b"t0k" not in data
    conn = sqlite3.connect(ledger.path)
    assert conn.execute("SELECT run_id, key, outcome, duration_ms FROM attempts").fetchall() == [
        (run, "K1", "succeeded", 12.5)
    ]
    conn.close()


def test_no_payload_values_reach_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    pii = ["alice.smith@example.com", "Alice Smith", "07700 900123"]
    with Ledger.open(path) as ledger:
        items = [
            Plan(key=f"LEG-{n}", step="case", row=n + 2, offset=None,
                 payload_hash=h(f"{value}|{n}"), lookup=f"LEG-{n}")
            for n, value in enumerate(pii)
        ]  # fmt: skip
        ledger.plan(items)
        ledger.mark_sending([("LEG-0", "case")])
        ledger.mark_succeeded("LEG-0", "case", target_id="C-1", http_status=200)
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"LEG-1" in data  # identifiers are there: the check can see stored text
    for value in pii:
        assert value.encode() not in data
