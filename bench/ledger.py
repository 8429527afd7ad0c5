"""Ledger benchmark: plan, resume queries and the per-request send protocol.

    .venv/bin/python bench/ledger.py [--rows 1000000] [--sends 20000] [--keep DIR]

Prints entries/s for planning a fresh ledger in batches of 500, the time of
`resume_point`, `in_doubt`, `counts` and of open + resume on the full ledger, pairs/s
for mark_sending + mark_succeeded committed one request at a time, and peak memory.
Targets (brief): plan >= 100,000 entries/s; each query well under 1 s; open + resume
well under 3 s; send protocol >= 10,000 pairs/s.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from loader.ledger import Ledger, Plan

BATCH = 500


def plans(start: int, stop: int) -> list[Plan]:
    return [
        Plan(
            key=f"REF-{n:08d}",
            step="case",
            row=n + 2,
            offset=n * 120,
            payload_hash=hashlib.sha256(f"payload {n}".encode()).hexdigest(),
            lookup=f"REF-{n:08d}",
        )
        for n in range(start, stop)
    ]


def timed(label: str, func: Callable[[], object]) -> float:
    start = time.perf_counter()
    result = func()
    elapsed = time.perf_counter() - start
    shown = result if not isinstance(result, list) else f"{len(result)} entries"
    print(f"{label:<38} {elapsed * 1000:9.1f} ms   ({shown})")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sends", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, default=None, help="directory for the ledger file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = (args.keep or Path(tmp)) / "bench-ledger.sqlite"
        path.unlink(missing_ok=True)
        ledger = Ledger.open(path)
        # Hashing the payloads is the planner's work, not the ledger's: only plan() is timed.
        elapsed = cpu = 0.0
        for n in range(0, args.rows, BATCH):
            batch = plans(n, min(n + BATCH, args.rows))
            start, cpu_start = time.perf_counter(), time.process_time()
            ledger.plan(batch)
            elapsed += time.perf_counter() - start
            cpu += time.process_time() - cpu_start
        print(f"plan, fresh ledger, batches of {BATCH:<5}   {args.rows / elapsed:9,.0f} entries/s"
              f"   ({args.rows:,} entries in {elapsed:.1f} s; {args.rows / cpu:,.0f} per CPU"
              " second)")  # fmt: skip
        ledger.mark_checkpoint("fp", args.rows + 2, None)

        # A rerun over the same file re-plans known entries (refreshing row and offset).
        again = min(args.rows, 100_000)
        elapsed = 0.0
        for n in range(0, again, BATCH):
            batch = plans(n, min(n + BATCH, again))
            start = time.perf_counter()
            ledger.plan(batch)
            elapsed += time.perf_counter() - start
        print(f"plan again, known entries               {again / elapsed:9,.0f} entries/s")

        # The send protocol, one committed transaction per call, as the executor does it.
        keys = [f"REF-{n:08d}" for n in range(args.sends)]
        start, cpu = time.perf_counter(), time.process_time()
        for key in keys:
            ledger.mark_sending([(key, "case")])
            ledger.mark_succeeded(key, "case", target_id=f"C{key}", http_status=200)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        # CPU time too: on a shared machine the wall clock also counts other people's work.
        print(f"mark_sending + mark_succeeded           {args.sends / elapsed:9,.0f} pairs/s"
              f"   ({args.sends / cpu:,.0f} per CPU second)")  # fmt: skip
        # Leave a few in doubt, as a crash would.
        ledger.mark_sending([(f"REF-{n:08d}", "case") for n in range(args.sends, args.sends + 50)])

        timed("resume_point", lambda: ledger.resume_point("fp"))
        timed("in_doubt", ledger.in_doubt)
        timed("counts", lambda: ledger.counts().to_dict()["states"])
        timed("due (first 500)", lambda: list(itertools.islice(ledger.due(time.time()), 500)))
        timed("last_errors", ledger.last_errors)
        ledger.close()

        def open_and_resume() -> tuple[object, int]:
            with Ledger.open(path) as again:
                return again.resume_point("fp"), len(again.in_doubt())

        timed("open + resume_point + in_doubt", open_and_resume)
        print(f"ledger file                             {path.stat().st_size / 1e6:9.1f} MB")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (RSS)                       {peak:9.1f} MB")


if __name__ == "__main__":
    main()
