"""Executor benchmarks against a sandbox in another process (so each has a core).

    python bench/run.py [--quick] [--skip-resume]

1. zero latency: createcase as fast as client + sandbox go together (target >= 1,000 req/s);
2. 50 ms latency with a server limit of 20, 100 and 500 req/s and `--rate` set to it:
   achieved rate (target >= 97%) and share of 429s (target <= 0.5%);
3. the same at 100 req/s with `--rate` unset, learning the limit from the headers (>= 90%);
4. resume with a 1,000,000-row ledger: seconds from `run()` to the first request (< 3 s).
Prints one line per measurement, and peak memory.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loader.execute import Settings
from loader.ledger import Ledger, Outcome, Plan
from loader.run import RunOptions, run
from loader.sandbox import Store
from loader.sources import fingerprint
from loader.spec import load_spec

SPEC = """\
spec: 1
name: bench
source: {file: rows.csv, key: Ref}
target: icasework
steps:
  - id: case
    operation: createcase
    fields:
      Type: {value: Complaint}
      ExternalId: {from: Ref, required: true}
      RequestMethod: {value: Email}
      Customer.Surname: {from: Surname, required: true}
"""
KEY, SECRET = "sandbox-key", "sandbox-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SandboxProcess:
    def __init__(self, store: Path, *args: str) -> None:
        self.port = free_port()
        self.store = store
        cmd = [
            sys.executable,
            "-m",
            "loader",
            "sandbox",
            "--port",
            str(self.port),
            "--store",
            str(store),
            *args,
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if b"Press Ctrl+C" in line:
                break
        self.url = f"http://127.0.0.1:{self.port}/?db=demo"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def project(folder: Path, rows: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.yaml").write_text(SPEC, encoding="utf-8")
    with (folder / "rows.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["Ref", "Surname"])
        writer.writerows((f"R{i:07d}", f"Surname{i}") for i in range(rows))
    return folder / "spec.yaml"


def window(log: Path) -> tuple[int, int, float]:
    """(answers 200, answers 429, seconds from the first attempt to the last)."""
    times, ok, throttled = [], 0, 0
    with log.open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            times.append(record["time"] - record["duration_ms"] / 1000)
            ok += record["status"] == 200
            throttled += record["status"] == 429
    return ok, throttled, max(times) - min(times)


def send(folder: Path, rows: int, url: str, settings: Settings, rate: float | None) -> Path:
    spec = load_spec(project(folder, rows))
    log = folder / "attempts.jsonl"
    options = RunOptions(
        target=url, ledger=folder / "ledger.sqlite", rate=rate, log_file=log, settings=settings
    )
    result = run(spec, options, environ={"LOADER_API_KEY": KEY, "LOADER_API_SECRET": SECRET})
    assert result.exit_code == 0, result.lines
    return log


def zero_latency(tmp: Path, rows: int) -> None:
    box = SandboxProcess(tmp / "z-store.sqlite")
    cpu = time.process_time()
    try:
        log = send(tmp / "zero", rows, box.url, Settings(concurrency=16), None)
    finally:
        box.stop()
    cpu = time.process_time() - cpu
    ok, _, seconds = window(log)
    # The client's own CPU per request says what one free core would allow; on a shared
    # machine the wall-clock figure also carries everyone else's load.
    print(
        f"zero latency: {ok} createcase in {seconds:.2f} s = {ok / seconds:,.0f} req/s "
        f"(client CPU {1000 * cpu / ok:.2f} ms per request, whole run incl. planning)"
    )


def limited(tmp: Path, limit: float, seconds: float, *, learn: bool) -> None:
    store = tmp / f"store-{limit}-{learn}.sqlite"
    box = SandboxProcess(store, "--latency", "50", "--rate", str(limit))
    rows = int(limit * seconds)
    try:
        log = send(
            tmp / f"rate-{limit}-{learn}",
            rows,
            box.url,
            Settings(concurrency=40),
            None if learn else limit,
        )
    finally:
        box.stop()
    ok, throttled, span = window(log)
    total = Store(store).count_requests()
    how = "learned from headers" if learn else "--rate set"
    print(
        f"limit {limit:g} req/s, 50 ms latency, {how}: achieved {ok / span:.1f} req/s "
        f"({100 * ok / span / limit:.1f}% of the limit), 429s {throttled} of {total} requests "
        f"({100 * throttled / max(total, 1):.2f}%)"
    )


def resume(tmp: Path, rows: int, pending: int) -> None:
    """A ledger of `rows` entries, all but the last `pending` succeeded, with the checkpoint
    of the same file: how long until the rerun's first request?"""
    folder = tmp / "resume"
    spec_path = project(folder, 0)
    csv_path = folder / "rows.csv"
    offsets: list[int] = []
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        f.write("Ref,Surname\r\n")
        for i in range(rows):
            offsets.append(f.tell())
            f.write(f"R{i:07d},Surname{i}\r\n")
    spec = load_spec(spec_path)
    started = time.perf_counter()
    ledger_path = folder / "ledger.sqlite"
    done = rows - pending
    with Ledger.open(ledger_path) as ledger:
        for low in range(0, rows, 10_000):
            batch = range(low, min(rows, low + 10_000))
            ledger.plan(
                [Plan(f"R{i:07d}", "case", i + 2, offsets[i], "x", f"R{i:07d}") for i in batch]
            )
            finished = [(f"R{i:07d}", "case") for i in batch if i < done]
            if finished:
                ledger.mark_sending(finished)
                ledger.record_outcomes(
                    [Outcome.succeeded(k, s, target_id="1", http_status=200) for k, s in finished]
                )
        source_print = f"{fingerprint(csv_path)}:{spec.sha256}"
        ledger.mark_checkpoint(source_print, rows + 1, offsets[-1])
    print(f"resume: built a {rows:,}-entry ledger in {time.perf_counter() - started:.1f} s")
    box = SandboxProcess(tmp / "resume-store.sqlite")
    log = folder / "attempts.jsonl"
    try:
        options = RunOptions(
            target=box.url, ledger=ledger_path, log_file=log, settings=Settings(concurrency=32)
        )
        t0 = time.time()
        result = run(spec, options, environ={"LOADER_API_KEY": KEY, "LOADER_API_SECRET": SECRET})
    finally:
        box.stop()
    with log.open(encoding="utf-8") as f:
        first = json.loads(f.readline())
    first_sent = first["time"] - first["duration_ms"] / 1000
    print(
        f"resume: first request {first_sent - t0:.2f} s after run() began "
        f"({result.summary['requests']} sent, exit {result.exit_code})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--skip-resume", action="store_true")
    args = parser.parse_args()
    seconds = 4.0 if args.quick else 8.0
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        os.chdir(tmp)  # runs/ and anything relative lands here
        zero_latency(tmp, 3000 if args.quick else 8000)
        for limit in (20, 100, 500):
            limited(tmp, limit, seconds if limit > 20 else seconds * 1.5, learn=False)
        limited(tmp, 100, seconds, learn=True)
        if not args.skip_resume:
            resume(tmp, 1_000_000, 1000)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
