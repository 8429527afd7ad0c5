"""What a run leaves behind, and reads back from a ledger: `results.csv`, `failures.csv`,
`run-summary.json`, and `loader status`.

Everything here reads the ledger (or the source, for `failures.csv`) and writes files or
text; nothing changes the ledger. Every CSV cell goes through `formula_safe`/`TableWriter`,
so a value from the source or the target never runs as a spreadsheet formula.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import IO, Any

from loader.ledger import Ledger, State
from loader.pipeline import prepare
from loader.reports import TableWriter, formula_safe
from loader.spec import Spec

RESULT_COLUMNS = ["key", "row", "step", "state", "target_id", "error_code", "error_info"]
HINTS = {
    "upstream-failed": "fix the failure of the earlier step of this row, then --retry-failed",
    "no-result": "the upload answer did not mention this row; check it on the target",
}
REJECTED_HINT = "invalid row, never sent: `loader validate` reports why; fix it and rerun"
STATUS_HINTS = {
    400: "the target refused these values: fix them (or the tenant's value lists), "
    "then rerun with --retry-failed",
    403: "permission denied: check what the API key may do on this tenant",
    404: "the record this row refers to does not exist on the target",
    409: "conflicts with a record on the target",
    422: "the target could not process these values: fix them, then --retry-failed",
}


def write_outputs(spec: Spec, ledger: Ledger, out: Path, summary: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_results(ledger, out / "results.csv")
    _write_failures(spec, ledger, out / "failures.csv")
    (out / "run-summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def write_results(ledger: Ledger, path: Path | None, *, stdout: IO[str] | None = None) -> int:
    """The cross-reference: source key, row, step, state, target id, error code and info.
    To `path` (CSV, formula-safe) or to `stdout`; returns the number of entries."""
    count = 0
    rows = (
        [e.key, e.row, e.step, str(e.state), e.target_id, e.error_code, e.error_info]
        for e in ledger.entries()
    )
    if path is None:
        writer = csv.writer(stdout or sys.stdout)
        writer.writerow(RESULT_COLUMNS)
        for row in rows:
            writer.writerow([formula_safe(v) for v in row])
            count += 1
        return count
    with TableWriter(path, RESULT_COLUMNS) as table:
        for row in rows:
            table.write(row)
            count += 1
    return count


def _write_failures(spec: Spec, ledger: Ledger, path: Path) -> None:
    """Failed and rejected rows in the source's own columns plus code, info and a hint:
    everything not loaded, in a file to fix and feed back."""
    failed: dict[str, tuple[str | None, str | None, str]] = {}
    for e in ledger.entries(states=[State.FAILED, State.REJECTED]):
        if e.state is State.REJECTED:
            failed.setdefault(e.key, ("rejected", e.issues, REJECTED_HINT))
        else:
            hint = _hint(e.error_code, e.http_status)
            failed.setdefault(e.key, (e.error_code, e.error_info, hint))
    path.unlink(missing_ok=True)
    if not failed:
        return
    with (
        prepare(spec) as prepared,
        TableWriter(path, [*prepared.table.header, "_code", "_info", "_hint"]) as table,
    ):
        for checked in prepared:
            found = failed.get(checked.key or f"row-{checked.row.number}")
            if found is not None and not checked.blank:
                table.write([*checked.row.values, *found])


def _hint(code: str | None, status: int | None) -> str:
    if code in HINTS:
        return HINTS[code]
    return STATUS_HINTS.get(status or 0, "see the error info; fix, then rerun with --retry-failed")


# -- status ----------------------------------------------------------------------------


def status_report(path: Path) -> dict[str, Any]:
    """Counts by state and step, the last run's rate, the most frequent error codes."""
    with Ledger.open(path, readonly=True) as ledger:
        counts = ledger.counts()
        runs = ledger.runs()
        errors = ledger.last_errors()
    last = runs[-1] if runs else None
    states = counts.states
    return {
        "ledger": str(path),
        "rows": counts.rows,
        "entries": counts.entries,
        "succeeded": states["succeeded"],
        "failed": states["failed"],
        "rejected": states["rejected"],
        "pending": states["pending"],
        "in_doubt": counts.in_doubt,
        "changed": counts.changed,
        "steps": counts.steps,
        "runs": len(runs),
        "last_run": None
        if last is None
        else {
            "status": last.status,
            "target": last.target,
            "rate_per_s": (last.summary or {}).get("rate_per_s"),
            "elapsed_s": (last.summary or {}).get("elapsed_s"),
        },
        "last_errors": [{"code": c, "info": i, "count": n} for c, i, n in errors],
    }


def format_status(report: dict[str, Any]) -> str:
    lines = [
        f"{report['ledger']}: {report['rows']} rows, {report['entries']} entries",
        f"  succeeded {report['succeeded']}, failed {report['failed']}, rejected "
        f"{report['rejected']}, pending {report['pending']}, in doubt {report['in_doubt']}, "
        f"changed {report['changed']}",
    ]
    for step, states in report["steps"].items():
        text = ", ".join(f"{s} {n}" for s, n in states.items() if n)
        lines.append(f"  step {step}: {text or 'empty'}")
    last = report["last_run"]
    if last is not None:
        rate = f", {last['rate_per_s']} req/s" if last["rate_per_s"] is not None else ""
        lines.append(f"  last run ({report['runs']} in all): {last['status']}{rate}")
    for err in report["last_errors"]:
        lines.append(f"  error {err['code']} x{err['count']}: {err['info']}")
    return "\n".join(lines)
