"""The ledger file: its tables, migrations, opening, and the one-writer lock.

Invariants: `PRAGMA user_version` is the schema version; a migration runs inside one
transaction with the version bump, so a ledger is at one version or the next, never
between. A newer ledger than this loader knows is refused, never downgraded. A writer
holds `<ledger>-lock` for as long as its connection is open (where the OS has `fcntl`).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from loader.errors import LedgerError

try:
    import fcntl
except ImportError:  # Windows: no advisory lock, the one-writer rule is only documented
    fcntl = None  # type: ignore[assignment]  # the module is optional on this platform

# Migrations: _MIGRATIONS[i] brings a ledger from schema version i to i + 1, inside one
# transaction together with `PRAGMA user_version`. Append; never edit a released one.
#
# `entries` is keyed on (key, step) WITHOUT ROWID, so a look-up by key is one b-tree
# search. The partial indexes hold only non-terminal entries, ordered by source row:
# resume_point, in_doubt and due are index seeks however many entries are terminal.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE entries (
            key TEXT NOT NULL,
            step TEXT NOT NULL,
            source_row INTEGER NOT NULL,
            source_offset INTEGER,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            payload_hash TEXT,
            lookup TEXT,
            target_id TEXT,
            http_status INTEGER,
            error_code TEXT,
            error_info TEXT,
            next_at REAL,
            changed INTEGER NOT NULL DEFAULT 0,
            issues TEXT,
            sent_at REAL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (key, step)
        ) WITHOUT ROWID""",
        "CREATE INDEX entries_pending ON entries (source_row) WHERE state = 'pending'",
        "CREATE INDEX entries_sending ON entries (source_row) WHERE state = 'sending'",
        "CREATE INDEX entries_failed ON entries (error_code) WHERE state = 'failed'",
        "CREATE INDEX entries_changed ON entries (source_row) WHERE changed = 1",
        # entries() pages through every entry by row: without this, each page is a sort.
        "CREATE INDEX entries_row ON entries (source_row)",
        # Entries per (step, state), so counts() reads a few rows instead of grouping a
        # million. Invariant: plan() is the only writer that inserts entries and adds
        # its inserts here itself (a per-row insert trigger cost 30% of plan's speed);
        # the trigger moves state changes; entries are never deleted.
        """CREATE TABLE tallies (
            step TEXT NOT NULL,
            state TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (step, state)
        ) WITHOUT ROWID""",
        # plan() seeds a row per state for every step it inserts, so two plain UPDATEs
        # do (the cheapest trigger: it runs on every committed send and outcome).
        """CREATE TRIGGER tally_update AFTER UPDATE OF state ON entries
            WHEN OLD.state <> NEW.state BEGIN
            UPDATE tallies SET n = n - 1 WHERE step = OLD.step AND state = OLD.state;
            UPDATE tallies SET n = n + 1 WHERE step = NEW.step AND state = NEW.state;
        END""",
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            started_at REAL NOT NULL,
            ended_at REAL,
            spec_name TEXT NOT NULL,
            spec_hash TEXT NOT NULL,
            source TEXT NOT NULL,
            source_fingerprint TEXT NOT NULL,
            target TEXT NOT NULL,
            status TEXT NOT NULL,
            summary TEXT
        )""",
        """CREATE TABLE attempts (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL,
            key TEXT NOT NULL,
            step TEXT NOT NULL,
            started_at REAL NOT NULL,
            duration_ms REAL NOT NULL,
            outcome TEXT NOT NULL,
            http_status INTEGER,
            code TEXT
        )""",
        # One checkpoint: the source most recently planned. A new fingerprint replaces it.
        """CREATE TABLE checkpoint (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            fingerprint TEXT NOT NULL,
            source_row INTEGER NOT NULL,
            source_offset INTEGER,
            updated_at REAL NOT NULL
        )""",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


def connect(path: Path, *, readonly: bool) -> tuple[sqlite3.Connection, int | None]:
    """Open the ledger at `path`, prepared at this loader's schema version; with the
    writer lock's descriptor (None for a reader, or where there is no `fcntl`)."""
    lock: int | None = None
    try:
        if readonly:
            if not path.is_file():
                raise LedgerError(f"{path}: no ledger here; `loader run` creates one")
            uri = f"{path.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(
                uri, uri=True, timeout=5.0, isolation_level=None, check_same_thread=False
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = _take_lock(path)
            conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    except OSError as exc:
        drop_lock(lock)
        raise LedgerError(f"{path}: cannot open the ledger: {exc}") from exc
    except sqlite3.Error as exc:
        drop_lock(lock)
        raise LedgerError(f"{path}: cannot open the ledger: {exc}") from exc
    try:
        _prepare(conn, path, readonly=readonly)
    except sqlite3.OperationalError as exc:  # locked, read-only directory, disk full
        conn.close()
        drop_lock(lock)
        raise LedgerError(f"{path}: cannot open the ledger: {exc}") from exc
    except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed"
        conn.close()
        drop_lock(lock)
        raise LedgerError(
            f"{path}: not a loader ledger (not a SQLite file, or damaged: {exc});"
            " give another --ledger file or move this one away"
        ) from exc
    except LedgerError:
        conn.close()
        drop_lock(lock)
        raise
    return conn, lock


def _prepare(conn: sqlite3.Connection, path: Path, *, readonly: bool) -> None:
    """Set the connection up and bring the schema to this loader's version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise LedgerError(
            f"{path}: made by a newer loader (ledger schema {version}, this loader knows up to"
            f" {SCHEMA_VERSION}); upgrade loader to use this ledger"
        )
    if version == 0:
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            raise LedgerError(f"{path}: a SQLite file, but not a loader ledger")
    if readonly:
        if version < SCHEMA_VERSION:
            what = "empty" if version == 0 else f"schema {version}"
            raise LedgerError(f"{path}: not a usable ledger ({what}); `loader run` prepares it")
        return
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    # Checkpoints are the only fsyncs under synchronous=NORMAL; at one commit per send
    # and outcome, checkpointing every 4,000 pages (16 MB of WAL) rather than 1,000
    # keeps them from dominating.
    conn.execute("PRAGMA wal_autocheckpoint = 4000")
    if version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statements in _MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _take_lock(path: Path) -> int | None:
    """Hold `<ledger>-lock` while this process writes: a second writer would take
    another's in-flight `sending` rows for in-doubt ones and resend them."""
    if fcntl is None:
        return None
    fd = os.open(path.with_name(path.name + "-lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise LedgerError(
            f"{path}: in use by another loader run; wait for it to end"
            " (`loader status` reads a ledger while it runs)"
        ) from exc
    return fd


def drop_lock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock
