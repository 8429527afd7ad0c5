"""Payload validation throughput on createcase: valid payloads (fast path only), invalid
payloads (fast path, then every error from jsonschema), and jsonschema alone for scale.

    .venv/bin/python bench/validate.py [N]

Prints validations per second (wall clock and CPU time) and the process's peak resident
memory (tracemalloc is not used: it slows validation several times over and would distort
the rates).
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

from loader.validate import PayloadValidator, operation_schema


def payloads(n: int, *, valid: bool) -> list[dict[str, Any]]:
    made = []
    for i in range(n):
        payload: dict[str, Any] = {
            "Type": "Complaint",
            "ExternalId": f"LEG-{i:06d}",
            "RequestMethod": "Email",
            "RequestDate": f"20{i % 24:02d}-0{1 + i % 9}-1{i % 10}T10:20:15",
            "Customer.FirstName": "Ann",
            "Customer.Surname": f"Lee{i}",
            "Customer.Email": f"ann.lee{i}@example.org",
            "Customer.Postcode": "LS1 1AA",
            "Details": "Bin not collected. " * 5,
            "Format": "json",
        }
        if not valid:  # two errors each: a bad e-mail and a day-first date
            payload["Customer.Email"] = f"ann.lee{i}@"
            payload["RequestDate"] = f"1{i % 10}/03/2021"
        made.append(payload)
    return made


def rate(
    label: str, check: Callable[[dict[str, Any]], object], batch: list[dict[str, Any]]
) -> None:
    start, cpu = time.perf_counter(), time.process_time()
    for payload in batch:
        check(payload)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(
        f"{label:<44} {len(batch) / elapsed:>10,.0f} validations/s"
        f" {len(batch) / cpu:>10,.0f} per CPU-second"
    )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    validator = PayloadValidator(operation_schema("icasework", "createcase"))
    good, bad = payloads(n, valid=True), payloads(n // 5, valid=False)
    assert all(validator.errors(p) == [] for p in good[:100])
    assert all(len(validator.errors(p)) == 2 for p in bad[:100])
    rate("valid, errors() (fast path)", validator.errors, good)
    rate("valid, full_errors() (jsonschema only)", validator.full_errors, good[: n // 5])
    rate("invalid, errors() (fast, then jsonschema)", validator.errors, bad)
    print(f"load average: {os.getloadavg()[0]:.2f} (the machine is shared)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak RSS: {peak:.0f} MiB (includes the {n + n // 5:,} test payloads)")


if __name__ == "__main__":
    main()
