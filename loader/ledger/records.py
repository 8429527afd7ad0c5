"""The ledger's value types: entry states, what the planner passes in and gets back,
entries and outcomes, runs and counts. Frozen, and free of payload values: a ledger
holds hashes and identifiers only (payload values may be personal data).

`TERMINAL` states are final for a run; only `retry_failed` moves a failed entry on.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class State(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"


TERMINAL: frozenset[State] = frozenset({State.SUCCEEDED, State.FAILED, State.REJECTED})


class Decision(StrEnum):
    """What `Ledger.plan` decided for one (row, step) of this run."""

    NEW = "new"  # inserted as pending: send it
    PENDING = "pending"  # known, not yet done (or retry later): send it when due
    DONE = "done"  # succeeded/failed already with the same payload: skip
    CHANGED = "changed"  # succeeded with a different payload: never re-sent, flagged
    IN_DOUBT = "in-doubt"  # state sending: resolve it before anything is resent
    REJECTED = "rejected"  # invalid row: recorded as rejected, never sent
    REVALIDATED = "revalidated"  # was rejected, now valid: back to pending, send it


@dataclass(frozen=True, slots=True)
class Plan:
    """What the planner knows of one (row, step) of this run. No payload values."""

    key: str
    step: str
    row: int
    offset: int | None
    payload_hash: str | None  # None for a rejected row
    lookup: str | None  # finds the record on the target (createcase: the ExternalId)
    rejected: bool = False
    issues: str | None = None  # value-free summary, "format:Customer.Email@F27; ..."


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    step: str
    row: int
    offset: int | None
    state: State
    attempts: int
    payload_hash: str | None
    lookup: str | None
    target_id: str | None
    http_status: int | None
    error_code: str | None
    error_info: str | None
    next_at: float | None
    changed: bool
    issues: str | None
    updated_at: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to one sent request, for `Ledger.record_outcomes` (one transaction).

    Build it with `succeeded`, `failed` or `retry`; `state` is where the entry goes.
    """

    key: str
    step: str
    state: State
    target_id: str | None = None
    http_status: int | None = None
    code: str | None = None
    info: str | None = None
    next_at: float | None = None
    payload_hash: str | None = None

    def __post_init__(self) -> None:
        if self.state not in (State.SUCCEEDED, State.FAILED, State.PENDING):
            raise ValueError(f"an outcome ends in succeeded, failed or pending, not {self.state}")
        if (self.state is State.PENDING) != (self.next_at is not None):
            raise ValueError("next_at is required for a retry outcome, and only for it")

    @classmethod
    def succeeded(
        cls,
        key: str,
        step: str,
        *,
        target_id: str | None,
        http_status: int | None,
        payload_hash: str | None = None,
    ) -> Outcome:
        return cls(key, step, State.SUCCEEDED, target_id, http_status, payload_hash=payload_hash)

    @classmethod
    def failed(
        cls, key: str, step: str, *, http_status: int | None, code: str | None, info: str | None
    ) -> Outcome:
        return cls(key, step, State.FAILED, None, http_status, code, info)

    @classmethod
    def retry(
        cls,
        key: str,
        step: str,
        *,
        next_at: float,
        http_status: int | None,
        code: str | None,
        info: str | None,
    ) -> Outcome:
        return cls(key, step, State.PENDING, None, http_status, code, info, next_at)


@dataclass(frozen=True, slots=True)
class RunInfo:
    id: int
    started_at: float
    ended_at: float | None
    spec_name: str
    spec_hash: str
    source: str
    source_fingerprint: str
    target: str
    status: str
    summary: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Counts:
    """Rows (distinct keys), entries by state overall and per step, in doubt, changed."""

    rows: int
    entries: int
    states: dict[str, int]  # every State, zeros included
    steps: dict[str, dict[str, int]]  # step -> state -> count (every State)
    in_doubt: int
    changed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "entries": self.entries,
            "states": dict(self.states),
            "steps": {step: dict(states) for step, states in self.steps.items()},
            "in_doubt": self.in_doubt,
            "changed": self.changed,
        }
