"""The sandbox's SQLite store: cases, customers, accounts, notes, and the request log.

The server writes through one connection on its event-loop thread. Each request is a
savepoint (its change and its request-log line stand or fall together) inside a
transaction that the app commits once per event-loop turn, before any of that turn's
answers is sent (a group commit: one WAL write for many requests, instead of one each).
So a test that reads the store right after an answer sees both the change and the log. WAL mode lets
tests and reconciliation read the same file from other threads or processes while the
server writes. Every thread gets its own connection (sqlite3 connections are not shared
across threads).

The request log keeps method, endpoint, status, time, duration, error code and fault;
never a token, a query string or a body value.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loader.errors import LoaderError

# Case ids look like the real ones (six digits) instead of starting at 1.
FIRST_CASE_ID = 480001

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    case_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    external_id TEXT,
    case_type   TEXT NOT NULL,
    status      TEXT NOT NULL,
    received    TEXT NOT NULL,      -- RequestDate, or the creation time
    created     TEXT NOT NULL,
    updated     TEXT NOT NULL,
    customer_id TEXT,
    fields      TEXT NOT NULL       -- JSON object: every field as sent (latest values)
);
CREATE INDEX IF NOT EXISTS cases_external_id ON cases (external_id);
CREATE TABLE IF NOT EXISTS customers (
    id      TEXT PRIMARY KEY,
    fields  TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS accounts (
    account_id          INTEGER PRIMARY KEY AUTOINCREMENT,
    type                TEXT NOT NULL,
    external_account_id TEXT NOT NULL,
    customer_id         TEXT,
    fields              TEXT NOT NULL,
    created             TEXT NOT NULL,
    updated             TEXT NOT NULL,
    UNIQUE (type, external_account_id)
);
CREATE TABLE IF NOT EXISTS notes (
    note_id INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id INTEGER NOT NULL,
    fields  TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    id          INTEGER PRIMARY KEY,
    time        TEXT NOT NULL,
    method      TEXT NOT NULL,
    endpoint    TEXT NOT NULL,
    status      INTEGER,            -- NULL: the connection was dropped, nothing was answered
    duration_ms REAL NOT NULL,
    error_code  TEXT,
    fault       TEXT                -- 'fail', 'drop', 'rate' or NULL
);
"""


class Store:
    """A sandbox store file. Safe to open on a file a running or stopped sandbox uses."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        conn = self._conn()
        try:
            with conn:
                conn.executescript(_SCHEMA)
                for table in ("cases", "accounts"):
                    start = FIRST_CASE_ID - 1 if table == "cases" else 0
                    conn.execute(
                        "INSERT INTO sqlite_sequence (name, seq) SELECT ?, ? WHERE NOT EXISTS"
                        " (SELECT 1 FROM sqlite_sequence WHERE name = ?)",
                        (table, start, table),
                    )
        except sqlite3.Error as exc:
            raise LoaderError(f"{self.path}: cannot use as a sandbox store: {exc}") from exc

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, isolation_level=None, timeout=10.0, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode = WAL")
                # NORMAL in WAL mode: a commit survives a process crash, not a power cut;
                # plenty for a sandbox, and it keeps a commit per request cheap.
                conn.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.Error as exc:
                raise LoaderError(f"{self.path}: cannot open sandbox store: {exc}") from exc
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction; rolled back if the block raises."""
        self.begin()
        try:
            yield
        except BaseException:
            self._conn().execute("ROLLBACK")
            raise
        self.commit()

    def begin(self) -> None:
        self._conn().execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._conn().execute("COMMIT")

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested unit inside an open transaction: undone alone if the block raises."""
        conn = self._conn()
        conn.execute("SAVEPOINT request")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK TO request")
            conn.execute("RELEASE request")
            raise
        conn.execute("RELEASE request")

    # -- writes (the server's handlers) -------------------------------------------------

    def insert_case(
        self,
        *,
        case_id: int | None,
        external_id: str | None,
        case_type: str,
        status: str,
        received: str,
        now: str,
        customer_id: str | None,
        fields: dict[str, str],
    ) -> int:
        cur = self._conn().execute(
            "INSERT INTO cases (case_id, external_id, case_type, status, received, created,"
            " updated, customer_id, fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (case_id, external_id, case_type, status, received, now, now, customer_id,
             json.dumps(fields)),
        )  # fmt: skip
        return int(cur.lastrowid or 0)

    def update_case(self, case_id: int, changes: dict[str, Any], fields: dict[str, str]) -> None:
        columns = ", ".join(f"{name} = ?" for name in changes)
        sep = ", " if columns else ""
        self._conn().execute(
            f"UPDATE cases SET {columns}{sep}fields = ? WHERE case_id = ?",
            (*changes.values(), json.dumps(fields), case_id),
        )

    def upsert_customer(self, customer_id: str, fields: dict[str, str], now: str) -> bool:
        """Merge `fields` into the customer (created if new). True when it was created."""
        conn = self._conn()
        row = conn.execute("SELECT fields FROM customers WHERE id = ?", (customer_id,)).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO customers (id, fields, created, updated) VALUES (?, ?, ?, ?)",
                (customer_id, json.dumps(fields), now, now),
            )
            return True
        merged = {**json.loads(row["fields"]), **fields}
        conn.execute(
            "UPDATE customers SET fields = ?, updated = ? WHERE id = ?",
            (json.dumps(merged), now, customer_id),
        )
        return False

    def rekey_customer(self, old_id: str, new_id: str) -> None:
        conn = self._conn()
        conn.execute("UPDATE customers SET id = ? WHERE id = ?", (new_id, old_id))
        conn.execute("UPDATE cases SET customer_id = ? WHERE customer_id = ?", (new_id, old_id))
        conn.execute("UPDATE accounts SET customer_id = ? WHERE customer_id = ?", (new_id, old_id))

    def upsert_account(
        self, account_type: str, external_id: str, customer_id: str | None,
        fields: dict[str, str], now: str,
    ) -> tuple[int, bool]:  # fmt: skip
        """Merge `fields` into the account; returns (account id, created)."""
        conn = self._conn()
        found = self.find_account(account_type, external_id)
        if found is None:
            cur = conn.execute(
                "INSERT INTO accounts (type, external_account_id, customer_id, fields, created,"
                " updated) VALUES (?, ?, ?, ?, ?, ?)",
                (account_type, external_id, customer_id, json.dumps(fields), now, now),
            )
            return int(cur.lastrowid or 0), True
        merged = {**found["fields"], **fields}
        conn.execute(
            "UPDATE accounts SET fields = ?, updated = ?, customer_id = COALESCE(?, customer_id)"
            " WHERE account_id = ?",
            (json.dumps(merged), now, customer_id, found["account_id"]),
        )
        return int(found["account_id"]), False

    def insert_note(self, case_id: int, fields: dict[str, str], now: str) -> int:
        cur = self._conn().execute(
            "INSERT INTO notes (case_id, fields, created) VALUES (?, ?, ?)",
            (case_id, json.dumps(fields), now),
        )
        return int(cur.lastrowid or 0)

    def log_request(
        self, *, time: str, method: str, endpoint: str, status: int | None,
        duration_ms: float, error_code: str | None = None, fault: str | None = None,
    ) -> None:  # fmt: skip
        self._conn().execute(
            "INSERT INTO requests (time, method, endpoint, status, duration_ms, error_code, fault)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (time, method, endpoint, status, duration_ms, error_code, fault),
        )

    # -- reads (tests, reconciliation, and the read endpoints) -------------------------

    def case_count(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM cases").fetchone()[0])

    def cases_by_external_id(self) -> dict[str, int]:
        """ExternalId → how many cases carry it (a value above 1 is a duplicate create)."""
        rows = self._conn().execute(
            "SELECT external_id, count(*) FROM cases WHERE external_id IS NOT NULL"
            " GROUP BY external_id ORDER BY external_id"
        )
        return {row[0]: int(row[1]) for row in rows}

    def case(self, case_id: int | str) -> dict[str, Any]:
        """One case as a dict (its `fields` decoded); KeyError when there is none."""
        found = self.find_cases(case_id=int(case_id)) if str(case_id).isdigit() else []
        if not found:
            raise KeyError(f"no case {case_id}")
        return found[0]

    def cases(self) -> list[dict[str, Any]]:
        return self.find_cases()

    def find_cases(
        self, *, case_id: int | None = None, external_id: str | None = None
    ) -> list[dict[str, Any]]:
        sql = "SELECT * FROM cases"
        args: tuple[object, ...] = ()
        if case_id is not None:
            sql, args = sql + " WHERE case_id = ?", (case_id,)
        elif external_id is not None:
            sql, args = sql + " WHERE external_id = ?", (external_id,)
        rows = self._conn().execute(sql + " ORDER BY case_id", args)
        return [_decoded(row) for row in rows]

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT * FROM customers WHERE id = ?", (customer_id,))
        found = row.fetchone()
        return _decoded(found) if found is not None else None

    def customers(self) -> list[dict[str, Any]]:
        rows = self._conn().execute("SELECT * FROM customers ORDER BY id")
        return [_decoded(row) for row in rows]

    def find_account(self, account_type: str, external_id: str) -> dict[str, Any] | None:
        row = (
            self._conn()
            .execute(
                "SELECT * FROM accounts WHERE type = ? AND external_account_id = ?",
                (account_type, external_id),
            )
            .fetchone()
        )
        return _decoded(row) if row is not None else None

    def accounts(self) -> list[dict[str, Any]]:
        rows = self._conn().execute("SELECT * FROM accounts ORDER BY account_id")
        return [_decoded(row) for row in rows]

    def notes(self) -> list[dict[str, Any]]:
        rows = self._conn().execute("SELECT * FROM notes ORDER BY note_id")
        return [_decoded(row) for row in rows]

    def requests(self) -> list[dict[str, Any]]:
        """The request log, oldest first: method, endpoint, status, time, duration_ms, ..."""
        rows = self._conn().execute("SELECT * FROM requests ORDER BY id")
        return [dict(row) for row in rows]

    def count_requests(self, endpoint: str | None = None, status: int | None = None) -> int:
        clauses: list[str] = []
        args: list[object] = []
        if endpoint is not None:
            clauses.append("endpoint = ?")
            args.append(endpoint)
        if status is not None:
            clauses.append("status = ?")
            args.append(status)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT count(*) FROM requests{where}"
        return int(self._conn().execute(sql, args).fetchone()[0])


def _decoded(row: sqlite3.Row) -> dict[str, Any]:
    record = dict(row)
    record["fields"] = json.loads(record["fields"])
    return record
