"""The `Ledger`: planning, the send protocol and reading, over an open ledger file.

Every write is one committed transaction; every protocol call (`mark_sending`,
`record_outcomes`, `release`) checks the state it moves from inside its own statement
and changes all of its entries or none. Iterators read in pages of keyset queries, so a
caller may write between items.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from loader.errors import LedgerError
from loader.ledger.records import Counts, Decision, Entry, Outcome, Plan, RunInfo, State
from loader.ledger.schema import connect, drop_lock

_ENTRY_COLUMNS = (
    "key, step, source_row, source_offset, state, attempts, payload_hash, lookup, target_id,"
    " http_status, error_code, error_info, next_at, changed, issues, updated_at"
)
_PAGE = 1000  # iterators read in pages so a caller may write between them


def _entry(r: tuple[Any, ...]) -> Entry:
    return Entry(
        r[0], r[1], r[2], r[3], State(r[4]), r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
        bool(r[13]), r[14], r[15],
    )  # fmt: skip


def _safe_target(target: str) -> str:
    """The target URL without user info, query or fragment: they may carry secrets."""
    parts = urlsplit(target)
    if not parts.scheme or not parts.netloc:
        return target
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class _Refused(Exception):
    """A protocol call met an entry in the wrong state; rolls its transaction back."""


@dataclass(slots=True)
class _Known:
    """The planning view of an existing entry, updated as a batch is decided."""

    state: State
    payload_hash: str | None
    changed: bool
    issues: str | None
    row: int
    offset: int | None
    lookup: str | None


class Ledger:
    """The SQLite result ledger. Open with `Ledger.open(path)`; use as a context manager."""

    def __init__(
        self, conn: sqlite3.Connection, path: Path, *, readonly: bool, lock: int | None
    ) -> None:
        self._conn = conn
        self.path = path
        self.readonly = readonly
        self._lock = lock

    def __repr__(self) -> str:
        mode = "readonly" if self.readonly else "writer"
        return f"<Ledger {str(self.path)!r} {mode}>"

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False) -> Ledger:
        path = Path(path)
        conn, lock = connect(path, readonly=readonly)
        return cls(conn, path, readonly=readonly, lock=lock)

    def close(self) -> None:
        self._conn.close()
        drop_lock(self._lock)
        self._lock = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One committed write transaction; sqlite3 errors become LedgerError."""
        if self.readonly:
            raise LedgerError(f"{self.path}: opened read-only; cannot write")
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise LedgerError(f"{self.path}: cannot write to the ledger: {exc}") from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: cannot read the ledger: {exc}") from exc

    # -- runs and metadata ------------------------------------------------------------

    def start_run(
        self, *, spec_name: str, spec_hash: str, source: str, source_fingerprint: str, target: str
    ) -> int:
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO runs (started_at, spec_name, spec_hash, source, source_fingerprint,"
                " target, status) VALUES (?, ?, ?, ?, ?, ?, 'running')",
                (time.time(), spec_name, spec_hash, source, source_fingerprint,
                 _safe_target(target)),
            )  # fmt: skip
            run_id = cur.lastrowid
        assert run_id is not None  # an INSERT into a rowid table always sets it
        return run_id

    def finish_run(self, run_id: int, *, status: str, summary: dict[str, Any]) -> None:
        text = json.dumps(summary, sort_keys=True, default=str)
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE runs SET ended_at = ?, status = ?, summary = ? WHERE id = ?",
                (time.time(), status, text, run_id),
            )
            if cur.rowcount != 1:
                raise LedgerError(f"{self.path}: no run {run_id} in this ledger")

    def runs(self) -> list[RunInfo]:
        rows = self._read(
            "SELECT id, started_at, ended_at, spec_name, spec_hash, source, source_fingerprint,"
            " target, status, summary FROM runs ORDER BY id"
        )
        return [
            RunInfo(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8],
                    json.loads(r[9]) if r[9] is not None else None)
            for r in rows
        ]  # fmt: skip

    # -- planning ---------------------------------------------------------------------

    def plan(self, items: Sequence[Plan]) -> list[Decision]:
        """Record this run's view of a batch of (row, step)s and decide each; one transaction.

        Known entries get their row/offset refreshed (a reordered file keeps resuming).
        A succeeded entry keeps the hash that was sent: a different one flags it
        `changed` (never re-sent), the same one clears the flag.
        """
        now = time.time()
        with self._write() as conn:
            known = self._known(conn, {item.key for item in items})
            decisions: list[Decision] = []
            inserts: list[tuple[Any, ...]] = []
            updates: list[tuple[Any, ...]] = []
            for item in items:
                pair = (item.key, item.step)
                old = known.get(pair)
                if old is None:
                    state = State.REJECTED if item.rejected else State.PENDING
                    known[pair] = _Known(
                        state, item.payload_hash, False, item.issues, item.row, item.offset,
                        item.lookup,
                    )  # fmt: skip
                    inserts.append(
                        (item.key, item.step, item.row, item.offset, state, item.payload_hash,
                         item.lookup, item.issues, now)
                    )  # fmt: skip
                    decisions.append(Decision.REJECTED if item.rejected else Decision.NEW)
                    continue
                before = (old.state, old.payload_hash, old.changed, old.issues)
                decisions.append(_decide(old, item))
                if before == (old.state, old.payload_hash, old.changed, old.issues) and (
                    old.row,
                    old.offset,
                    old.lookup,
                ) == (item.row, item.offset, item.lookup or old.lookup):
                    continue  # a rerun over an unchanged file writes nothing
                old.row, old.offset, old.lookup = item.row, item.offset, item.lookup or old.lookup
                updates.append(
                    (item.row, item.offset, item.lookup, old.state, old.payload_hash,
                     int(old.changed), old.issues, now, item.key, item.step)
                )  # fmt: skip
            conn.executemany(
                "INSERT INTO entries (key, step, source_row, source_offset, state, payload_hash,"
                " lookup, issues, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                inserts,
            )
            added = Counter((row[1], row[4]) for row in inserts)
            conn.executemany(
                "INSERT INTO tallies VALUES (?, ?, 0) ON CONFLICT DO NOTHING",
                [(step, state) for step in {step for step, _ in added} for state in State],
            )
            conn.executemany(
                "UPDATE tallies SET n = n + ? WHERE step = ? AND state = ?",
                [(n, step, state) for (step, state), n in added.items()],
            )
            # In item order, after the inserts: a pair planned twice in a batch ends up
            # as its last occurrence says.
            conn.executemany(
                "UPDATE entries SET source_row = ?, source_offset = ?,"
                " lookup = coalesce(?, lookup), state = ?, payload_hash = ?, changed = ?,"
                " issues = ?, updated_at = ? WHERE key = ? AND step = ?",
                updates,
            )
        return decisions

    def _known(self, conn: sqlite3.Connection, keys: set[str]) -> dict[tuple[str, str], _Known]:
        known: dict[tuple[str, str], _Known] = {}
        ordered = list(keys)
        for start in range(0, len(ordered), 900):  # within any SQLite's variable limit
            chunk = ordered[start : start + 900]
            rows = conn.execute(
                "SELECT key, step, state, payload_hash, changed, issues, source_row,"
                " source_offset, lookup FROM entries"
                f" WHERE key IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            known.update(
                {(r[0], r[1]): _Known(State(r[2]), r[3], bool(r[4]), *r[5:]) for r in rows}
            )
        return known

    def mark_checkpoint(self, fingerprint: str, row: int, offset: int | None) -> None:
        """Every row of this source before (row, offset) has been planned.

        Mark it after the `plan` call for those rows commits: a checkpoint that lags
        only makes a resume re-read rows that plan then finds done.
        """
        with self._write() as conn:
            conn.execute(
                "INSERT INTO checkpoint (id, fingerprint, source_row, source_offset, updated_at)"
                " VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " fingerprint = excluded.fingerprint, source_row = excluded.source_row,"
                " source_offset = excluded.source_offset, updated_at = excluded.updated_at",
                (fingerprint, row, offset, time.time()),
            )

    def resume_point(self, fingerprint: str) -> tuple[int, int | None] | None:
        """Where a run over the same source may start reading, or None to read it all.

        None when there is no checkpoint or it was made for another fingerprint (a
        changed file: read it all). Otherwise the lowest (row, offset) among
        non-terminal entries, or the checkpoint when it is lower or every planned
        entry is terminal. Give a fingerprint that covers the spec too, so that a
        changed spec re-plans rejected rows.
        """
        rows = self._read("SELECT fingerprint, source_row, source_offset FROM checkpoint")
        if not rows or rows[0][0] != fingerprint:
            return None
        point: tuple[int, int | None] = (rows[0][1], rows[0][2])
        for state in (State.PENDING, State.SENDING):
            # Two single-seek queries on the partial indexes (the WHERE text must
            # match the index's for SQLite to use it).
            low = self._read(
                "SELECT source_row, source_offset FROM entries"
                f" WHERE state = '{state}' ORDER BY source_row LIMIT 1"
            )
            if low and low[0][0] < point[0]:
                point = (low[0][0], low[0][1])
        return point

    # -- the send protocol: each call is one committed transaction ------------------------

    def mark_sending(self, items: Sequence[tuple[str, str]]) -> None:
        """Claim pending (key, step)s for sending: state=sending, attempts+1. All or none.

        Committed before the requests leave: a crash then leaves them in doubt, never
        lost. Only a pending entry can be claimed, so an in-doubt, done or rejected
        entry is never sent twice.
        """
        now = time.time()
        self._transition(
            "UPDATE entries SET state = 'sending', attempts = attempts + 1, next_at = NULL,"
            " sent_at = ?, updated_at = ? WHERE key = ? AND step = ? AND state = 'pending'",
            [(now, now, key, step) for key, step in items],
            State.PENDING,
            "claim for sending",
        )

    def mark_succeeded(
        self,
        key: str,
        step: str,
        *,
        target_id: str | None,
        http_status: int | None,
        payload_hash: str | None = None,
    ) -> None:
        """sending → succeeded; `payload_hash`: the hash actually sent, when it differs
        from the planned one (a payload completed at send time)."""
        self.record_outcomes(
            [Outcome.succeeded(key, step, target_id=target_id, http_status=http_status,
                               payload_hash=payload_hash)]
        )  # fmt: skip

    def mark_failed(
        self, key: str, step: str, *, http_status: int | None, code: str | None, info: str | None
    ) -> None:
        self.record_outcomes(
            [Outcome.failed(key, step, http_status=http_status, code=code, info=info)]
        )

    def mark_retry(
        self,
        key: str,
        step: str,
        *,
        next_at: float,
        http_status: int | None,
        code: str | None,
        info: str | None,
    ) -> None:
        """sending → pending, due at `next_at`: the request provably did not apply."""
        self.record_outcomes(
            [Outcome.retry(key, step, next_at=next_at, http_status=http_status, code=code,
                           info=info)]
        )  # fmt: skip

    def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Record answers to sent requests in one transaction. All or none.

        Each entry must be in `sending`: an outcome for anything else is a protocol
        error (LedgerError), since it would overwrite a recorded result.
        """
        now = time.time()
        self._transition(
            "UPDATE entries SET state = ?, target_id = coalesce(?, target_id), http_status = ?,"
            " error_code = ?, error_info = ?, next_at = ?,"
            " payload_hash = coalesce(?, payload_hash), updated_at = ?"
            " WHERE key = ? AND step = ? AND state = 'sending'",
            [
                (o.state, o.target_id, o.http_status, o.code, o.info, o.next_at, o.payload_hash,
                 now, o.key, o.step)
                for o in outcomes
            ],
            State.SENDING,
            "record an outcome for",
        )  # fmt: skip

    def release(self, items: Sequence[tuple[str, str]]) -> None:
        """sending → pending without counting the attempt: the request provably never left."""
        now = time.time()
        self._transition(
            "UPDATE entries SET state = 'pending', attempts = max(attempts - 1, 0),"
            " updated_at = ? WHERE key = ? AND step = ? AND state = 'sending'",
            [(now, key, step) for key, step in items],
            State.SENDING,
            "release",
        )

    def _transition(self, sql: str, rows: list[tuple[Any, ...]], needed: State, what: str) -> None:
        """Run a state-guarded UPDATE (its last two parameters are key and step) for
        every row, committed; all or none. Raise LedgerError naming the first entry
        that was not in the `needed` state."""
        if self.readonly:
            raise LedgerError(f"{self.path}: opened read-only; cannot write")
        if not rows:
            return
        if len(rows) == 1:
            # One statement is its own transaction: no BEGIN/COMMIT round trips, which
            # matters at one call per request.
            try:
                done = self._conn.execute(sql, rows[0]).rowcount == 1
            except sqlite3.Error as exc:
                raise LedgerError(f"{self.path}: cannot write to the ledger: {exc}") from exc
        else:
            try:
                with self._write() as conn:
                    if conn.executemany(sql, rows).rowcount != len(rows):
                        raise _Refused
                done = True
            except _Refused:
                done = False
        if not done:
            raise self._refusal([(r[-2], r[-1]) for r in rows], needed, what)

    def _refusal(self, items: Sequence[tuple[str, str]], needed: State, what: str) -> LedgerError:
        """The error for a transition that met entries in the wrong state (it has been
        rolled back, so this reads the states it met)."""
        seen: set[tuple[str, str]] = set()
        for key, step in items:
            rows = self._read("SELECT state FROM entries WHERE key = ? AND step = ?", (key, step))
            where = f"{self.path}: cannot {what} {key!r} step {step!r}"
            if not rows:
                return LedgerError(f"{where}: no such entry")
            if (key, step) in seen:
                return LedgerError(f"{where}: given twice")
            seen.add((key, step))
            if rows[0][0] != needed:
                return LedgerError(f"{where}: it is {rows[0][0]}, not {needed}")
        return LedgerError(f"{self.path}: cannot {what}: entries changed under this call")

    def record_attempt(
        self,
        *,
        run_id: int,
        key: str,
        step: str,
        started_at: float,
        duration_ms: float,
        outcome: str,
        http_status: int | None,
        code: str | None,
    ) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO attempts (run_id, key, step, started_at, duration_ms, outcome,"
                " http_status, code) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, key, step, started_at, duration_ms, outcome, http_status, code),
            )

    def retry_failed(self) -> int:
        """Failed → pending (for --retry-failed); returns how many."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE entries SET state = 'pending', next_at = NULL, updated_at = ?"
                " WHERE state = 'failed'",
                (time.time(),),
            )
            return cur.rowcount

    # -- reading ----------------------------------------------------------------------

    def get(self, key: str, step: str) -> Entry | None:
        rows = self._read(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE key = ? AND step = ?", (key, step)
        )
        return _entry(rows[0]) if rows else None

    def target_id(self, key: str, step: str) -> str | None:
        rows = self._read("SELECT target_id FROM entries WHERE key = ? AND step = ?", (key, step))
        return rows[0][0] if rows else None

    def in_doubt(self) -> list[Entry]:
        """Entries left in `sending` (after a crash), by row."""
        rows = self._read(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE state = 'sending'"
            " ORDER BY source_row, key, step"
        )
        return [_entry(r) for r in rows]

    def due(self, now: float) -> Iterator[Entry]:
        """Pending entries whose retry time has come (or have none), by row.

        Reads in pages, each a fresh query that seeks past the last entry yielded, so
        the caller may mark entries between items without disturbing the iteration.
        """
        return self._pages(
            "state = 'pending' AND (next_at IS NULL OR next_at <= ?)", (now,), "entries_pending"
        )

    def entries(self, *, states: Iterable[State] | None = None) -> Iterator[Entry]:
        """Entries by row, then key and step; all of them, or those in `states`."""
        if states is None:
            return self._pages("1", (), "entries_row")
        wanted = sorted({State(s) for s in states})
        marks = ",".join("?" * len(wanted))
        return self._pages(f"state IN ({marks})", tuple(wanted), "entries_row")

    def _pages(self, where: str, params: tuple[Any, ...], index: str) -> Iterator[Entry]:
        # INDEXED BY: the index's order (source_row, then the key and step every index
        # carries) is the keyset order, so each page is a seek, never a sort.
        sql = (
            f"SELECT {_ENTRY_COLUMNS} FROM entries INDEXED BY {index} WHERE {where}"
            " AND (source_row, key, step) > (?, ?, ?) ORDER BY source_row, key, step LIMIT ?"
        )
        last: tuple[Any, ...] = (-(2**62), "", "")
        while True:
            rows = self._read(sql, (*params, *last, _PAGE))
            for r in rows:
                yield _entry(r)
            if len(rows) < _PAGE:
                return
            last = (rows[-1][2], rows[-1][0], rows[-1][1])

    def counts(self) -> Counts:
        by_step: dict[str, dict[str, int]] = {}
        totals = dict.fromkeys(State, 0)
        for step, state, n in self._read("SELECT step, state, n FROM tallies ORDER BY step"):
            by_step.setdefault(step, {str(s): 0 for s in State})[state] = n
            totals[State(state)] += n
        entries = sum(totals.values())
        # (key, step) is unique, so with one step there are as many keys as entries;
        # only several steps need the (full index) scan for distinct keys.
        rows = entries
        if len(by_step) > 1:
            rows = self._read("SELECT count(*) FROM (SELECT DISTINCT key FROM entries)")[0][0]
        changed = self._read("SELECT count(*) FROM entries WHERE changed = 1")[0][0]
        states = {str(s): n for s, n in totals.items()}
        return Counts(rows, entries, states, by_step, totals[State.SENDING], changed)

    def last_errors(self, limit: int = 10) -> list[tuple[str | None, str | None, int]]:
        """The errors of failed entries: (code, info, count), most frequent first."""
        return [
            (r[0], r[1], r[2])
            for r in self._read(
                "SELECT error_code, error_info, count(*) AS n FROM entries WHERE state = 'failed'"
                " GROUP BY error_code, error_info ORDER BY n DESC, error_code LIMIT ?",
                (limit,),
            )
        ]


def _decide(old: _Known, item: Plan) -> Decision:
    """Decide a known (key, step) and update `old` in place to the state it goes to."""
    if old.state is State.SENDING:
        return Decision.IN_DOUBT  # resolve first; the new payload waits
    if old.state is State.SUCCEEDED:
        # The hash that was sent stays: `changed` says whether the source moved on.
        old.changed = item.rejected or item.payload_hash != old.payload_hash
        old.issues = item.issues if item.rejected else None
        return Decision.CHANGED if old.changed else Decision.DONE
    if item.rejected:
        old.state, old.payload_hash, old.issues = State.REJECTED, None, item.issues
        return Decision.REJECTED
    was = old.state
    if was is State.FAILED and item.payload_hash == old.payload_hash:
        return Decision.DONE
    old.state, old.payload_hash, old.issues = State.PENDING, item.payload_hash, None
    return Decision.REVALIDATED if was is State.REJECTED else Decision.PENDING
