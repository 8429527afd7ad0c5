"""HTTP client cost against the sandbox (in another process): req/s and CPU per request.

    python bench/http_clients.py [--requests N] [--in-flight N] [--only NAME ...]

Every variant POSTs the same createcase body (bearer token, JSON) `--requests` times with
`--in-flight` requests at once, on uvloop, and prints the achieved rate, the client's CPU
per request (this process) and the sandbox's (its process, from /proc). The loader's own
work (reading, mapping, validating, the ledger) is not included: this is the floor the HTTP
client sets. The project uses httpx2 unless numbers here justify another choice
(aiohttp is measured only when it is installed; it is not a project dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx2
import uvloop
from run import KEY, SECRET, SandboxProcess  # bench/run.py: this folder is sys.path[0]

from loader.auth import Credentials, ICaseworkJWT
from loader.targets.icasework import OPERATIONS, ICasework

Send = Callable[[int], Awaitable[int]]  # request number -> HTTP status


def body(i: int) -> dict[str, str]:
    return {
        "Type": "Complaint",
        "ExternalId": f"H{i:08d}",
        "RequestMethod": "Email",
        "Customer.Surname": f"Surname{i}",
        "Format": "json",
    }


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(send: Send, requests: int, in_flight: int) -> int:
    """Send `requests` requests, `in_flight` at a time; the number answered 200."""
    counter = iter(range(requests))
    ok = 0

    async def worker() -> None:
        nonlocal ok
        for i in counter:
            status = await send(i)  # awaited first: `ok += await ...` would read a stale ok
            ok += status == 200

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return ok


def httpx2_variant(*, pool: int, prebuilt: bool, **client_args: object) -> Any:
    async def variant(target: ICasework, token: str, requests: int, in_flight: int) -> int:
        limits = httpx2.Limits(max_connections=pool, max_keepalive_connections=pool)
        args: dict[str, Any] = {"limits": limits, "timeout": httpx2.Timeout(30.0, connect=10.0)}
        args.update(client_args)
        if "transport" in args:
            args.pop("limits")
        async with httpx2.AsyncClient(**args) as client:
            op = OPERATIONS["createcase"]
            url = httpx2.URL(target.url("createcase"))
            headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            }

            async def send(i: int) -> int:
                if prebuilt:
                    content = json.dumps(body(i)).encode()
                    request = httpx2.Request("POST", url, content=content, headers=headers)
                else:
                    request = target.request(op, body(i), token)
                response = await client.send(request)
                return response.status_code

            return await drive(send, requests, in_flight)

    return variant


async def aiohttp_variant(target: ICasework, token: str, requests: int, in_flight: int) -> int:
    import aiohttp

    url = target.url("createcase")
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    connector = aiohttp.TCPConnector(limit=in_flight + 2)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(i: int) -> int:
            content = json.dumps(body(i)).encode()
            async with session.post(url, data=content, headers=headers) as response:
                await response.read()
                return response.status

        return await drive(send, requests, in_flight)


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection parsed by httptools (a prototype for measuring
    what a lean httpx2 transport would cost; not used by the loader)."""

    def __init__(self) -> None:
        import httptools

        self.parser = httptools.HttpResponseParser(self)
        self.transport: Any = None
        self.closed = False
        self.waiter: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]] | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(httpx2.ReadError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.waiter is not None
        self.waiter.set_result((self.parser.get_status_code(), self.headers, b"".join(self.body)))
        self.headers, self.body = [], []


class LeanTransport(httpx2.AsyncBaseTransport):
    """Keep-alive pool of `_Conn`s; the request goes out in one write."""

    def __init__(self) -> None:
        self.idle: list[_Conn] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        conn = None
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                break
            conn = None
        loop = asyncio.get_running_loop()
        if conn is None:
            _, conn = await loop.create_connection(_Conn, url.host, url.port or 80)
        assert conn.transport is not None
        head = [f"{request.method} {url.raw_path.decode()} HTTP/1.1\r\n".encode()]
        head.extend(k + b": " + v + b"\r\n" for k, v in request.headers.raw)
        head.append(b"\r\n")
        head.append(request.content)
        conn.waiter = loop.create_future()
        conn.transport.write(b"".join(head))
        status, headers, content = await conn.waiter
        if conn.parser.should_keep_alive():
            self.idle.append(conn)
        else:
            conn.transport.close()
        return httpx2.Response(status, headers=headers, content=content)

    async def aclose(self) -> None:
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()


def variants(in_flight: int) -> dict[str, Any]:
    pool = in_flight + 2
    found: dict[str, Any] = {
        # as loader/run.py configures it, the request built by ICasework.request
        "httpx2-as-configured": httpx2_variant(pool=pool, prebuilt=False),
        # the same client; URL parsed once, body json.dumps(...).encode(), headers prebuilt
        "httpx2-prebuilt-request": httpx2_variant(pool=pool, prebuilt=True),
        "httpx2-trust_env=False": httpx2_variant(pool=pool, prebuilt=True, trust_env=False),
        "httpx2-pool=in_flight": httpx2_variant(pool=in_flight, prebuilt=True),
        "httpx2-pool=2*in_flight": httpx2_variant(pool=2 * in_flight, prebuilt=True),
        "httpx2-transport(retries=0,http1)": httpx2_variant(
            pool=pool,
            prebuilt=True,
            transport=httpx2.AsyncHTTPTransport(
                http1=True,
                http2=False,
                retries=0,
                limits=httpx2.Limits(max_connections=pool, max_keepalive_connections=pool),
            ),
        ),
        # httpx2 with a lean transport: asyncio protocol + httptools, one write per request
        "httpx2-lean-transport(prototype)": httpx2_variant(
            pool=pool, prebuilt=True, transport=LeanTransport()
        ),
    }
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        pass
    else:
        found["aiohttp"] = aiohttp_variant
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--repeat", type=int, default=1, help="rounds over the variants")
    args = parser.parse_args()
    with TemporaryDirectory() as name:
        box = SandboxProcess(Path(name) / "store.sqlite")
        try:
            target = ICasework(box.url)

            async def get_token() -> str:
                async with httpx2.AsyncClient() as client:
                    return await ICaseworkJWT(target.token_url, Credentials(KEY, SECRET)).token(
                        client
                    )

            token = asyncio.run(get_token())
            chosen = variants(args.in_flight)
            names = args.only or list(chosen)
            for _ in range(args.repeat):
                for name in names:
                    measure(name, chosen[name], target, token, box, args)
        finally:
            box.stop()


def measure(
    name: str, variant: Any, target: ICasework, token: str, box: SandboxProcess, args: Any
) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        server_cpu = cpu_of(box.proc.pid)
        cpu, wall = time.process_time(), time.perf_counter()
        ok = runner.run(variant(target, token, args.requests, args.in_flight))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server_cpu = cpu_of(box.proc.pid) - server_cpu
    print(
        f"{name:36s} {ok / wall:7,.0f} req/s  client CPU {1000 * cpu / args.requests:.3f} ms/req"
        f"  sandbox CPU {1000 * server_cpu / args.requests:.3f} ms/req"
        f"  ({ok} of {args.requests} ok, {args.in_flight} in flight, "
        f"load {os.getloadavg()[0]:.1f})",
        flush=True,
    )


if __name__ == "__main__":
    main()
