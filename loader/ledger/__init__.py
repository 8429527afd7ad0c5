"""The result ledger: a SQLite file that makes runs resumable and sends exactly once.

Per (source key, step) the ledger keeps a state, the attempt count, the payload hash,
the look-up value and the id the target returned, the last HTTP status and error, and
times; plus the runs and every attempt (an audit trail). It stores no payload values
(they may be personal data): only hashes and identifiers.

States and the send protocol (DESIGN §5)::

    pending ──mark_sending──► sending ──mark_succeeded──► succeeded
       ▲  ▲                     │  │ ───mark_failed─────► failed ──retry_failed──► pending
       │  └──────release────────┘  │
       └────────mark_retry─────────┘          rejected (an invalid row; never sent)

`mark_sending` is committed before a request leaves, so a crash leaves the row in
`sending`: in doubt, never lost, and never sent again until it is resolved. Only a
`pending` entry can be claimed for sending: that check, inside the same statement as
the claim, is the ledger's half of exactly-once.

One writer process at a time (an advisory lock on `<ledger>-lock` enforces it where the
OS has `fcntl`); any number of read-only readers (`loader status`) alongside, thanks to
WAL. A `Ledger` is not thread-safe: use it from one thread at a time.

Modules: `records` (the value types: states, plans, entries, outcomes, counts), `schema`
(the tables, migrations, opening and the writer lock), `store` (the `Ledger` itself:
planning, the send protocol and reading). Import the public names from here.
"""

from loader.ledger.records import (
    TERMINAL,
    Counts,
    Decision,
    Entry,
    Outcome,
    Plan,
    RunInfo,
    State,
)
from loader.ledger.schema import SCHEMA_VERSION
from loader.ledger.store import Ledger

__all__ = [
    "SCHEMA_VERSION",
    "TERMINAL",
    "Counts",
    "Decision",
    "Entry",
    "Ledger",
    "Outcome",
    "Plan",
    "RunInfo",
    "State",
]
