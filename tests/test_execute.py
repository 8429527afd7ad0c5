"""The engine against scripted answers (httpx2.MockTransport) and a real ledger file."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx2
import pytest

from loader.auth import Credentials, ICaseworkJWT
from loader.execute import Engine, Settings, Task, Work
from loader.ledger import Ledger, Plan, State
from loader.mapping import StepRef
from loader.targets.icasework import OPERATIONS, ICasework
from loader.throttle import Throttle

URL = "http://127.0.0.1:9/?db=demo"
FAST = Settings(concurrency=4, grace=0.0, backoff=0.001, backoff_max=0.002, stop_grace=0.5)

Handler = Callable[[httpx2.Request], httpx2.Response]


class Server:
    """Plain-function handler: tokens, and whatever `answer` says for the other endpoints."""

    def __init__(self, answer: Callable[[str, httpx2.Request, int], httpx2.Response]) -> None:
        self.answer = answer
        self.calls: dict[str, int] = {}
        self.bodies: list[dict[str, Any]] = []
        self.tokens = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        endpoint = request.url.path.strip("/")
        if endpoint == "token":
            self.tokens += 1
            token = f"tok{self.tokens}"
            return httpx2.Response(200, json={"access_token": token, "expires_in": 3600})
        n = self.calls[endpoint] = self.calls.get(endpoint, 0) + 1
        if request.method == "POST" and request.headers.get("content-type", "").startswith(
            "application/json"
        ):
            self.bodies.append(json.loads(request.content))
        return self.answer(endpoint, request, n)


def created(endpoint: str, n: int) -> httpx2.Response:
    return httpx2.Response(200, json={f"{endpoint}response": {"caseid": str(1000 + n)}})


def error(status: int, code: str, info: str, **headers: str) -> httpx2.Response:
    h = {"X-Application-Error-Code": code, "X-Application-Error-Info": info, **headers}
    return httpx2.Response(status, headers=h, text="<html>An Unexpected Error Occured</html>")


def ledger_with(path: Path, rows: Sequence[tuple[str, str, str | None]]) -> Ledger:
    """A ledger holding (key, step, lookup) entries, pending."""
    ledger = Ledger.open(path)
    plans = [Plan(k, s, i + 2, None, f"h{i}", lookup) for i, (k, s, lookup) in enumerate(rows)]
    ledger.plan(plans)
    return ledger


def case_work(key: str, row: int, operation: str = "createcase") -> Work:
    op = OPERATIONS[operation]
    payload = {"Type": "Complaint", "ExternalId": key}
    return Work(key, row, [Task("case", op, payload, key if op.lookup_field else None)])


def engine_run(
    ledger: Ledger,
    server: Server,
    works: list[Work],
    settings: Settings = FAST,
    *,
    before: Callable[[Engine], Any] | None = None,
) -> Engine:
    async def go() -> Engine:
        transport = httpx2.MockTransport(server)
        async with httpx2.AsyncClient(transport=transport) as client:
            target = ICasework(URL)
            engine = Engine(
                ledger=ledger,
                target=target,
                auth=ICaseworkJWT(target.token_url, Credentials("key", "secret")),
                client=client,
                throttle=Throttle(None),
                settings=settings,
            )
            if before is not None:
                await before(engine)
            await engine.run([works])
            return engine

    return asyncio.run(go())


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    keys = [(f"K{i}", "case", f"K{i}") for i in range(10)]
    with ledger_with(tmp_path / "ledger.sqlite", keys) as opened:
        yield opened


def states(ledger: Ledger) -> dict[str, str]:
    return {e.key: str(e.state) for e in ledger.entries()}


def test_all_succeed_with_their_ids_and_claims_share_commits(ledger: Ledger) -> None:
    calls: list[int] = []
    real = ledger.mark_sending

    def spy(items: Sequence[tuple[str, str]]) -> None:
        calls.append(len(items))
        real(items)

    ledger.mark_sending = spy  # type: ignore[method-assign]  # a spy on the claim commits
    server = Server(lambda ep, req, n: created(ep, n))
    engine = engine_run(ledger, server, [case_work(f"K{i}", i + 2) for i in range(10)])
    assert set(states(ledger).values()) == {"succeeded"}
    assert sorted(str(e.target_id) for e in ledger.entries()) == [str(1001 + i) for i in range(10)]
    assert engine.tally.succeeded == 10 and engine.tally.requests == 10
    assert sum(calls) == 10 and len(calls) < 10  # claims of one loop turn share a commit
    assert server.tokens == 1


@pytest.mark.parametrize(
    ("answer", "state", "code", "info"),
    [
        (error(400, "2003", "Invalid RequestMethod"), "failed", "2003", "Invalid RequestMethod"),
        (error(422, "2099", "Unprocessable"), "failed", "2099", "Unprocessable"),
        (error(409, "2098", "Conflict"), "failed", "2098", "Conflict"),
    ],
)
def test_permanent_refusals_are_failed_with_code_and_info(
    ledger: Ledger, answer: httpx2.Response, state: str, code: str, info: str
) -> None:
    server = Server(lambda ep, req, n: answer)
    engine_run(ledger, server, [case_work("K0", 2)])
    entry = ledger.get("K0", "case")
    assert entry is not None
    assert (str(entry.state), entry.error_code, entry.error_info) == (state, code, info)
    assert server.calls == {"createcase": 1}


def test_retry_safe_answers_are_retried_then_succeed(ledger: Ledger) -> None:
    def answer(ep: str, req: httpx2.Request, n: int) -> httpx2.Response:
        if n == 1:
            return error(503, "2097", "busy", **{"Retry-After": "0"})
        if n == 2:
            return httpx2.Response(429, headers={"Retry-After": "0"})
        return created(ep, n)

    server = Server(answer)
    engine = engine_run(ledger, server, [case_work("K0", 2)])
    entry = ledger.get("K0", "case")
    assert entry is not None and entry.state is State.SUCCEEDED and entry.attempts == 3
    assert engine.tally.retries == 2 and engine.tally.throttled == 1


def test_retries_are_bounded_and_an_outage_fails_no_row(ledger: Ledger) -> None:
    server = Server(lambda ep, req, n: error(503, "2097", "busy", **{"Retry-After": "0"}))
    works = [case_work("K0", 2), case_work("K1", 3)]
    settings = Settings(**{**_fast(), "max_attempts": 3, "concurrency": 1})
    engine = engine_run(ledger, server, works, settings)
    assert engine.stop_reason == "unreachable"
    assert engine.unreachable is not None and engine.unreachable.code == "2097"
    entry = ledger.get("K0", "case")
    # Pending again, not failed: the target's trouble is not the row's.
    assert entry is not None and entry.state is State.PENDING and entry.error_code == "2097"
    other = ledger.get("K1", "case")
    assert other is not None and other.state is State.PENDING
    # K0 made its 3 tries; K1, interleaved with it, was stopped before its own third.
    assert 3 <= server.calls["createcase"] < 6
    assert engine.tally.failed == 0


def _fast() -> dict[str, Any]:
    return {f: getattr(FAST, f) for f in FAST.__slots__}


def lookup_answer(found: dict[str, list[str]]) -> Callable[[httpx2.Request], httpx2.Response]:
    def answer(req: httpx2.Request) -> httpx2.Response:
        ids = found.get(req.url.params["ExternalId"], [])
        if not ids:
            return error(400, "5002", "Unable to identify case")
        body = "".join(
            json.dumps({"CaseDetails.CaseId": i, "CaseDetails.ExternalId": "x"}) for i in ids
        )
        return httpx2.Response(200, text=body, headers={"Content-Type": "application/json"})

    return answer


@pytest.mark.parametrize(
    ("found", "creates", "target_id", "duplicates"),
    [
        ({"K0": ["77"]}, 1, "77", 0),  # applied before the drop: recorded, never resent
        ({}, 2, "1002", 0),  # not applied: safe to send again
        ({"K0": ["77", "78"]}, 1, "77", 1),  # duplicates: the first, and reported
    ],
)
def test_dropped_create_is_settled_by_look_up(
    ledger: Ledger, found: dict[str, list[str]], creates: int, target_id: str, duplicates: int
) -> None:
    look = lookup_answer(found)

    def answer(ep: str, req: httpx2.Request, n: int) -> httpx2.Response:
        if ep == "getcasedetails":
            return look(req)
        if n == 1:
            raise httpx2.RemoteProtocolError("Server disconnected without sending a response.")
        return created(ep, n)

    server = Server(answer)
    engine = engine_run(ledger, server, [case_work("K0", 2)])
    entry = ledger.get("K0", "case")
    assert entry is not None and entry.state is State.SUCCEEDED
    assert entry.target_id == target_id
    assert server.calls["createcase"] == creates
    assert server.calls["getcasedetails"] == 1
    assert len(engine.tally.duplicates) == duplicates


@pytest.mark.parametrize(
    ("policy", "state", "creates"),
    [("lookup", "sending", 1), ("stop", "sending", 1), ("resend", "succeeded", 2)],
)
def test_in_doubt_without_look_up_follows_the_policy(
    tmp_path: Path, policy: str, state: str, creates: int
) -> None:
    def answer(ep: str, req: httpx2.Request, n: int) -> httpx2.Response:
        if n == 1:
            raise httpx2.ReadTimeout("timed out")
        return httpx2.Response(200, json={"createaccountresponse": {"accountid": "A1"}})

    server = Server(answer)
    settings = Settings(**{**_fast(), "in_doubt": policy})
    with ledger_with(tmp_path / "l.sqlite", [("A", "account", None)]) as ledger:
        op = OPERATIONS["createaccount"]
        work = Work("A", 2, [Task("account", op, {"Type": "CTAX", "ExternalAccountId": "A"})])
        engine = engine_run(ledger, server, [work], settings)
        entry = ledger.get("A", "account")
        assert entry is not None and str(entry.state) == state
        assert server.calls["createaccount"] == creates
        if state == "sending":
            assert engine.stop_reason == "in-doubt"
            assert engine.tally.unresolved == [("A", "account", 2)]


def test_auth_failure_refreshes_the_token_once(ledger: Ledger) -> None:
    def answer(ep: str, req: httpx2.Request, n: int) -> httpx2.Response:
        if req.headers["Authorization"] == "Bearer tok1":
            return error(403, "2021", "Invalid token")
        return created(ep, n)

    server = Server(answer)
    engine_run(ledger, server, [case_work("K0", 2)])
    entry = ledger.get("K0", "case")
    assert entry is not None and entry.state is State.SUCCEEDED and entry.attempts == 1
    assert server.tokens == 2


def test_auth_failure_after_a_refresh_stops_the_run(ledger: Ledger) -> None:
    server = Server(lambda ep, req, n: error(403, "2021", "Invalid token"))
    engine = engine_run(ledger, server, [case_work("K0", 2)])
    entry = ledger.get("K0", "case")
    assert engine.stop_reason == "auth"
    assert entry is not None and entry.state is State.PENDING  # refused: never applied
    assert server.tokens == 2 and server.calls == {"createcase": 2}


def two_step(tmp_path: Path, keys: list[str]) -> tuple[Ledger, list[Work]]:
    ledger = ledger_with(
        tmp_path / "two.sqlite",
        [(k, s, None) for k in keys for s in ("account", "case")],
    )
    works = []
    for i, key in enumerate(keys):
        account = {"Type": "CTAX", "ExternalAccountId": key}
        case = {"Type": "Complaint", "ExternalId": key, "Customer.Id": StepRef("account")}
        works.append(
            Work(
                key,
                i + 2,
                [
                    Task("account", OPERATIONS["createaccount"], account),
                    Task("case", OPERATIONS["createcase"], case, key),
                ],
            )
        )
    return ledger, works


def test_a_later_step_gets_the_earlier_id_or_fails_upstream(tmp_path: Path) -> None:
    def answer(ep: str, req: httpx2.Request, n: int) -> httpx2.Response:
        if ep == "createaccount":
            if json.loads(req.content)["ExternalAccountId"] == "BAD":
                return error(400, "3004", "Invalid Type")
            return httpx2.Response(200, json={"createaccountresponse": {"accountid": "A9"}})
        return created(ep, n)

    server = Server(answer)
    ledger, works = two_step(tmp_path, ["OK", "BAD"])
    with ledger:
        engine_run(ledger, server, works)
        got = {(e.key, e.step): (str(e.state), e.error_code) for e in ledger.entries()}
    assert got == {
        ("OK", "account"): ("succeeded", None),
        ("OK", "case"): ("succeeded", None),
        ("BAD", "account"): ("failed", "3004"),
        ("BAD", "case"): ("failed", "upstream-failed"),
    }
    cases = [b for b in server.bodies if "ExternalId" in b]
    assert [c["Customer.Id"] for c in cases] == ["A9"]


def test_blocked_rows_fail_upstream_without_sending(ledger: Ledger) -> None:
    server = Server(lambda ep, req, n: created(ep, n))
    work = case_work("K0", 2)
    work.blocked = True
    engine_run(ledger, server, [work])
    entry = ledger.get("K0", "case")
    assert entry is not None and entry.error_code == "upstream-failed"
    assert server.calls == {}


def upload_answer(rejected: set[str]) -> Callable[[str, httpx2.Request, int], httpx2.Response]:
    def answer(ep: str, req: httpx2.Request, n: int) -> httpx2.Response:
        lines = req.content.decode().splitlines()[1:]
        results = []
        for i, line in enumerate(lines, start=1):
            key = line.split(",")[0]
            if key in rejected:
                results.append({"row": i, "status": "rejected", "code": "9003", "info": "bad"})
            else:
                results.append({"row": i, "status": "created", "id": f"C-{key}"})
        body = {"uploaddataresponse": {"type": "customers", "rows": len(lines), "results": results}}
        return httpx2.Response(200, json=body)

    return answer


def test_uploaddata_rows_go_in_chunks_with_per_row_outcomes(tmp_path: Path) -> None:
    keys = [f"U{i:02d}" for i in range(12)]
    server = Server(upload_answer({"U03"}))
    settings = Settings(**{**_fast(), "upload_limit": 5})
    op = OPERATIONS["uploaddata"]
    works = [
        Work(k, i + 2, [Task("load", op, {"Id": k, "Surname": "S"}, None, "customers")])
        for i, k in enumerate(keys)
    ]
    with ledger_with(tmp_path / "u.sqlite", [(k, "load", None) for k in keys]) as ledger:
        engine_run(ledger, server, works, settings)
        got = {e.key: (str(e.state), e.target_id, e.error_code) for e in ledger.entries()}
    assert server.calls == {"uploaddata": 3}
    assert got["U03"] == ("failed", None, "9003")
    assert got["U04"] == ("succeeded", "C-U04", None)
    assert sum(1 for s, _, _ in got.values() if s == "succeeded") == 11


def test_rows_left_in_doubt_by_a_crash_are_settled_before_sending(ledger: Ledger) -> None:
    ledger.mark_sending([("K0", "case"), ("K1", "case")])
    server = Server(lambda ep, req, n: lookup_answer({"K0": ["55"]})(req))
    ops = {"case": (OPERATIONS["createcase"], None)}

    async def settle(engine: Engine) -> None:
        await engine.resolve_entries(ledger.in_doubt(), ops)

    engine_run(ledger, server, [], before=settle)
    k0, k1 = ledger.get("K0", "case"), ledger.get("K1", "case")
    assert k0 is not None and k0.state is State.SUCCEEDED and k0.target_id == "55"
    assert k1 is not None and k1.state is State.PENDING  # not there: safe to send
    assert server.calls == {"getcasedetails": 2}


def test_a_stop_sends_nothing_new(ledger: Ledger) -> None:
    server = Server(lambda ep, req, n: created(ep, n))

    async def stop(engine: Engine) -> None:
        engine.stop("interrupted")

    engine = engine_run(ledger, server, [case_work(f"K{i}", i + 2) for i in range(10)], before=stop)
    assert server.calls == {}
    assert set(states(ledger).values()) == {"pending"}
    assert engine.stop_reason == "interrupted"
