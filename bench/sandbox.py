"""Benchmark of the sandbox: createcase throughput and token-bucket accuracy.

    .venv/bin/python bench/sandbox.py            # ~10 s of createcase, then 2 × 20 s of bucket
    .venv/bin/python bench/sandbox.py --quick    # ~3 s and 2 × 5 s

The server runs in a subprocess (`loader sandbox`), so that client and server each have
a core. The client is one `httpx2.AsyncClient` with 64 requests in flight. Target:
≥ 1,500 createcase requests/s at zero latency. For the bucket, the client sends faster
than the configured rate and counts the answers that were not 429: allowed/s should be
the rate (plus burst/duration for the bucket's initial fill). A second createcase run
uses a minimal raw-socket HTTP/1.1 client, to show the server's own capacity when the
httpx2 client (which costs more CPU per request than the server) is the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import jwt

ROOT = Path(__file__).resolve().parents[1]
IN_FLIGHT = 64
T = TypeVar("T")
KEY, SECRET, ACCOUNT = "sandbox-key", "sandbox-secret-for-the-benchmark-run", "demo"


def start_server(*extra: str) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "loader", "sandbox", "--port", "0", "--api-secret", SECRET,
               *extra]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # "Sandbox listening on http://127.0.0.1:PORT"
    if "listening on" not in first:
        proc.kill()
        raise SystemExit(f"the sandbox did not start: {first!r}")
    return proc, first.rsplit(" ", 1)[1].strip()


async def token(client: httpx2.AsyncClient, base: str) -> str:
    aud = f"{base}/token?db={ACCOUNT}"
    assertion = jwt.encode({"iss": KEY, "aud": aud, "iat": int(time.time())}, SECRET, "HS256")
    answer = await client.post(
        aud,
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


async def drive(base: str, seconds: float) -> tuple[int, int, float]:
    """Send createcase with IN_FLIGHT workers for `seconds`; (ok, other, elapsed).

    `elapsed` ends at the last 200 answer, so that the workers' tail after the deadline
    (answered 429) does not count as time the bucket had to fill.
    """
    limits = httpx2.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx2.AsyncClient(limits=limits, timeout=30.0) as client:
        headers = {"Authorization": f"Bearer {await token(client, base)}"}
        url = f"{base}/createcase?db={ACCOUNT}"
        counts = {"ok": 0, "other": 0}
        start = last_ok = time.perf_counter()
        deadline = start + seconds

        async def worker(n: int) -> None:
            nonlocal last_ok
            i = 0
            while time.perf_counter() < deadline:
                i += 1
                body = {"Type": "Complaint", "ExternalId": f"B{n}-{i}", "RequestMethod": "Email",
                        "Customer.Surname": "Bench", "Format": "json"}  # fmt: skip
                answer = await client.post(url, json=body, headers=headers)
                if answer.status_code == 200:
                    counts["ok"] += 1
                    last_ok = time.perf_counter()
                else:
                    counts["other"] += 1

        await asyncio.gather(*(worker(n) for n in range(IN_FLIGHT)))
        return counts["ok"], counts["other"], last_ok - start


async def drive_raw(base: str, seconds: float) -> tuple[int, int, float]:
    """The same load from a minimal HTTP/1.1 client over raw sockets (64 connections).

    httpx2 spends more CPU per request than the server does, so on two cores it is the
    client that limits the figure above; this one shows what the server itself sustains.
    """
    async with httpx2.AsyncClient() as client:
        bearer = await token(client, base)
    host, port = base.removeprefix("http://").rsplit(":", 1)
    counts = {"ok": 0, "other": 0}
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(n: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        i = 0
        while time.perf_counter() < deadline:
            i += 1
            body = (f'{{"Type": "Complaint", "ExternalId": "R{n}-{i}", "RequestMethod": "Email",'
                    f' "Customer.Surname": "Bench", "Format": "json"}}').encode()  # fmt: skip
            head = (f"POST /createcase?db={ACCOUNT} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    f"Authorization: Bearer {bearer}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
            writer.write(head + body)
            headers = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            length = next(int(line.split(":", 1)[1]) for line in headers.split("\r\n")
                          if line.lower().startswith("content-length:"))  # fmt: skip
            await reader.readexactly(length)
            counts["ok" if headers.startswith("HTTP/1.1 200") else "other"] += 1
        writer.close()

    await asyncio.gather(*(worker(n) for n in range(IN_FLIGHT)))
    return counts["ok"], counts["other"], time.perf_counter() - start


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop where installed: the client needs every cycle it can get."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def server_rss_mb(proc: subprocess.Popen[str]) -> float:
    status = Path(f"/proc/{proc.pid}/status")
    if not status.exists():
        return float("nan")
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):  # peak resident set size
            return int(line.split()[1]) / 1024
    return float("nan")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (about 15 s)")
    args = parser.parse_args()
    load_seconds, bucket_seconds = (3.0, 5.0) if args.quick else (10.0, 20.0)
    # full run: 2 × 10 s of load + 2 × 20 s of bucket + start-ups, about 65 s
    print(f"cpus: {os.cpu_count()}, in flight: {IN_FLIGHT}")

    for name, driver in (("httpx2", drive), ("raw sockets", drive_raw)):
        proc, base = start_server()
        try:
            ok, other, elapsed = run(driver(base, load_seconds))
            peak = server_rss_mb(proc)
        finally:
            stop(proc)
        rate = ok / elapsed
        print(f"createcase ({name} client): {ok} ok, {other} other in {elapsed:.1f} s = "
              f"{rate:,.0f} req/s (target >= 1,500); server peak RSS {peak:.0f} MB")  # fmt: skip

    for rate in (50, 200):
        proc, base = start_server("--rate", str(rate), "--burst", str(rate))
        try:
            ok, limited, elapsed = run(drive(base, bucket_seconds))
        finally:
            stop(proc)
        allowed = ok / elapsed
        steady = (ok - rate) / elapsed  # without the bucket's initial fill of `burst`
        print(f"bucket {rate}/s burst {rate}: allowed {ok} in {elapsed:.1f} s = {allowed:.1f}/s "
              f"({steady:.1f}/s without the initial burst, {steady / rate:.1%} of the rate); "
              f"429s: {limited}")  # fmt: skip
    client_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"client peak RSS {client_peak:.0f} MB")


if __name__ == "__main__":
    main()
