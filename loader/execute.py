"""The async engine: sends planned rows to the target, throttled, bounded, exactly-once.

Invariants (DESIGN §5–§6):
- a (key, step) is marked `sending` and that is COMMITTED before its request leaves: a crash
  then leaves the row in doubt, never lost; claims made in the same loop turn share one commit;
- an in-doubt outcome (timeout after sending, dropped connection, 5xx on a create) is never
  resent blindly: after a grace period (the request may still be running on the server) a
  look-up decides; an idempotent operation is resent; otherwise the `in_doubt` policy decides;
- step N+1 of a row starts only once step N succeeded (its `from_step` values need the id);
- a 403 "Invalid token" refreshes the token once and retries; a second one right after stops;
- no per-request SQLite reads: the engine keeps what it needs (ids, attempts) in memory.

One `httpx2.AsyncClient` and one `Throttle` serve every request, the uploaddata chunks that
`loader.chunks` gathers included; `Settings.concurrency` bounds the requests in flight, and a
larger bound on live row tasks keeps memory flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, Literal, TypeVar

import httpx2

from loader.auth import TokenProvider
from loader.chunks import UPSERT_KINDS, Chunker
from loader.ledger import Entry, Ledger
from loader.ledger import Outcome as Recorded
from loader.mapping import StepRef
from loader.outcomes import Kind, Outcome, classify
from loader.targets.icasework import OPERATIONS, ICasework, Operation
from loader.throttle import Throttle

T = TypeVar("T")
InDoubtPolicy = Literal["stop", "lookup", "resend"]
StopReason = Literal["interrupted", "in-doubt", "auth", "budget", "unreachable", "error"]
UPSTREAM_FAILED = "upstream-failed"


@dataclass(frozen=True, slots=True)
class Settings:
    concurrency: int = 32  # requests in flight; 500 req/s at 50 ms needs >= 25
    in_doubt: InDoubtPolicy = "lookup"
    max_attempts: int = 6  # retry-safe failures of one (row, step) in a run; 429s do not count
    backoff: float = 0.5  # first retry delay (s), doubled per attempt, full jitter
    backoff_max: float = 30.0
    grace: float = 2.0  # wait before looking up an in-doubt request
    lookup_attempts: int = 5
    upload_limit: int = 5000  # rows per uploaddata chunk
    upload_linger: float = 0.5  # flush a partial chunk after this long without filling
    stop_grace: float = 5.0  # first Ctrl-C: time left for requests in flight
    max_failures: int | None = None  # error budget: stop once this many rows failed this run

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {self.concurrency}")
        if self.in_doubt not in ("stop", "lookup", "resend"):
            raise ValueError(f"in_doubt must be stop, lookup or resend, not {self.in_doubt!r}")
        if self.upload_limit < 1:
            raise ValueError(f"upload_limit must be at least 1, not {self.upload_limit}")
        if self.max_failures is not None and self.max_failures < 1:
            raise ValueError(f"max_failures must be at least 1, not {self.max_failures}")


@dataclass(slots=True)
class Task:
    """One step of one row, ready to send (StepRef values are filled at send time)."""

    step: str
    op: Operation
    payload: dict[str, Any]
    lookup: str | None = None  # the value that finds the record (createcase: ExternalId)
    upload_type: str | None = None  # uploaddata kind


@dataclass(slots=True)
class Work:
    """One source row: its steps still to send, in spec order."""

    key: str
    row: int
    tasks: list[Task]
    ids: dict[str, str | None] = field(default_factory=dict)  # ids of steps already done
    blocked: bool = False  # an earlier step failed in a previous run: fail these upstream


@dataclass(slots=True)
class Tally:
    """Counters for progress and the run summary (this run only)."""

    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    throttled: int = 0  # 429 answers
    in_doubt: int = 0  # in-doubt outcomes seen
    resolved: int = 0  # in-doubt rows settled by a look-up
    in_flight: int = 0
    duplicates: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)
    unresolved: list[tuple[str, str, int]] = field(default_factory=list)  # key, step, row
    started: float = field(default_factory=time.monotonic)


class AttemptLog:
    """JSON lines, one per attempt: time, key, step, row, outcome, status, code, duration.
    Never payload values or tokens."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def write(
        self,
        key: str,
        step: str,
        row: int,
        outcome: str,
        status: int | None,
        code: str | None,
        duration_ms: float,
    ) -> None:
        record = {
            "time": round(time.time(), 3),
            "key": key,
            "step": step,
            "row": row,
            "outcome": outcome,
            "status": status,
            "code": code,
            "duration_ms": round(duration_ms, 1),
        }
        self._file.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self._file.close()


_UNKNOWN = Outcome(Kind.RETRY, None, None, None, None)  # a look-up that got no clear answer
Result = tuple[bool, str | None] | None  # (succeeded, target id); None: left for a later run


class Engine:
    """Sends rows, one task per request or (uploaddata) a `Chunker`'s chunk per request.

    `ledger`, `target`, `auth` and the request primitives (`request`, `resolve`, `sleep`,
    `delay`, `spawn`, `count_failed`) are what a `Chunker` sends its chunks with.
    """

    def __init__(
        self,
        *,
        ledger: Ledger,
        target: ICasework,
        auth: TokenProvider,
        client: httpx2.AsyncClient,
        throttle: Throttle,
        settings: Settings,
        log: AttemptLog | None = None,
    ) -> None:
        self.ledger, self.target, self.auth = ledger, target, auth
        self._client, self._throttle, self.settings = client, throttle, settings
        self._log = log
        self.tally = Tally()
        self.stop_reason: StopReason | None = None
        self.unreachable: Outcome | None = None  # the failure that made the run give up
        self.fatal: BaseException | None = None
        self._stopped = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._claims = _Batcher(ledger.mark_sending)
        self._outcomes = _Batcher(ledger.record_outcomes)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._chunkers: dict[str, Chunker] = {}

    # -- control -----------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self.stop_reason is not None

    def stop(self, reason: StopReason) -> None:
        """Send nothing new; requests in flight finish (or are cancelled after stop_grace)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stopped.set()

    def count_failed(self, rows: int = 1) -> None:
        """Count failed rows; past the error budget, send nothing new (a systematic refusal
        should not be repeated on every remaining row)."""
        self.tally.failed += rows
        budget = self.settings.max_failures
        if budget is not None and self.tally.failed >= budget:
            self.stop("budget")

    async def sleep(self, seconds: float) -> None:
        """Sleep that a stop cuts short."""
        if seconds > 0 and not self.stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), seconds)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self.fatal is None:
            # A ledger or programming error: stop everything and re-raise it from run().
            self.fatal = task.exception()
            self.stop("error")

    # -- the run -----------------------------------------------------------------------

    async def run(self, batches: Iterable[Sequence[Work]], *, chunked: bool = False) -> Tally:
        """Send every Work. Iterating `batches` reads and plans the source (synchronously, a
        few hundred rows at a time); a bound on live row tasks keeps memory flat, raised to a
        chunk's worth of rows when some step is an uploaddata (`chunked`)."""
        live_limit = self.settings.concurrency * 4
        if chunked:
            live_limit = max(live_limit, self.settings.upload_limit + self.settings.concurrency)
        live = asyncio.Semaphore(live_limit)
        try:
            for batch in batches:
                for work in batch:
                    await live.acquire()
                    if self.stopping:
                        live.release()
                        break
                    self.spawn(self._row(work)).add_done_callback(lambda _: live.release())
                if self.stopping:
                    break
                await asyncio.sleep(0)
        finally:
            for chunker in self._chunkers.values():
                chunker.flush()
            await self._drain()
        if self.fatal is not None:
            raise self.fatal
        return self.tally

    async def _drain(self) -> None:
        while self._tasks and not self.stopping:
            stopped = asyncio.ensure_future(self._stopped.wait())
            try:
                await asyncio.wait({stopped, *self._tasks}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.settings.stop_grace)
            # Cancelled requests stay `sending`: in doubt, looked up on the next run.
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def _row(self, work: Work) -> None:
        failed = work.blocked
        for i, task in enumerate(work.tasks):
            if failed:
                self._fail_upstream(work, work.tasks[i:], "an earlier step of this row failed")
                return
            if self.stopping:
                return
            payload = self._fill(work, task)
            if payload is None:
                self._fail_upstream(work, work.tasks[i:], "an earlier step returned no id")
                return
            if task.op.chunked:
                result = await self._chunker(task).submit(work, task, payload)
            else:
                result = await self._send(work, task, payload)
            if result is None:
                return  # left pending or in doubt: later steps wait for a later run
            ok, target_id = result
            failed = not ok
            work.ids[task.step] = target_id

    def _fill(self, work: Work, task: Task) -> dict[str, Any] | None:
        payload = task.payload
        if not any(isinstance(v, StepRef) for v in payload.values()):
            return payload
        filled = dict(payload)
        for name, value in payload.items():
            if isinstance(value, StepRef):
                target_id = work.ids.get(value.step)
                if target_id is None:
                    return None
                filled[name] = target_id
        return filled

    # -- one request -------------------------------------------------------------------

    async def request(
        self,
        op: Operation,
        build: Callable[[str], httpx2.Request],
        key: str,
        step: str,
        row: int,
        claims: Sequence[tuple[str, str]],
    ) -> tuple[Outcome, httpx2.Response | None, str] | None:
        """Acquire a slot and the throttle, claim, send. None: stopping, nothing claimed."""
        async with self._slots:
            await self._throttle.acquire()
            if self.stopping:
                return None
            token = await self.auth.token(self._client)
            if len(claims) == 1:
                # Claims made in the same loop turn share one committed transaction.
                await self._claims.add(claims[0])
            else:
                self.ledger.mark_sending(claims)
            self.tally.requests += 1
            self.tally.in_flight += 1
            started = time.monotonic()
            response: httpx2.Response | None = None
            try:
                response = await self._client.send(build(token))
            except httpx2.HTTPError as exc:
                outcome = classify(op, error=exc, target=self.target)
            else:
                self._throttle.observe(response.status_code, response.headers)
                outcome = classify(op, response=response, target=self.target)
            finally:
                self.tally.in_flight -= 1
        if outcome.http_status == 429:
            self.tally.throttled += 1
        if self._log is not None:
            duration = (time.monotonic() - started) * 1000
            self._log.write(
                key, step, row, outcome.kind.value, outcome.http_status, outcome.code, duration
            )
        return outcome, response, token

    async def _send(self, work: Work, task: Task, payload: dict[str, Any]) -> Result:
        op, key, step = task.op, work.key, task.step
        retries = 0
        while True:
            sent = await self.request(
                op,
                lambda token: self.target.request(op, payload, token),
                key,
                step,
                work.row,
                [(key, step)],
            )
            if sent is None:
                return None
            outcome, response, token = sent
            kind = outcome.kind
            if kind is Kind.OK:
                assert response is not None  # OK always comes with an answer
                target_id = self.target.new_id(op, response)
                status = outcome.http_status
                await self._outcomes.add(
                    Recorded.succeeded(key, step, target_id=target_id, http_status=status)
                )
                self.tally.succeeded += 1
                return True, target_id
            if kind is Kind.FAILED:
                # Counted before the await: a spent error budget stops the next request.
                self.count_failed()
                await self._outcomes.add(
                    Recorded.failed(
                        key,
                        step,
                        http_status=outcome.http_status,
                        code=outcome.code,
                        info=outcome.info,
                    )
                )
                return False, None
            if kind is Kind.AUTH:
                # The request was refused before being applied: not an attempt that counts.
                self.ledger.release([(key, step)])
                if self.auth.invalidate(token):
                    continue
                self.stop("auth")
                return None
            if kind is Kind.RETRY or op.idempotent:
                if outcome.http_status != 429:
                    retries += 1
                if retries >= self.settings.max_attempts:
                    self.give_up([(key, step)], outcome)
                    return None
                delay = self.delay(retries, outcome)
                self.tally.retries += 1
                self.ledger.mark_retry(
                    key,
                    step,
                    next_at=time.time() + delay,
                    http_status=outcome.http_status,
                    code=outcome.code,
                    info=outcome.info,
                )
                await self.sleep(delay)
                continue
            # In doubt: the request may have been applied. Look it up, never resend blindly.
            self.tally.in_doubt += 1
            found = await self.resolve(work.key, step, work.row, op, task.lookup)
            if found == "absent":
                # Not applied: pending again (a claim needs it), and sent at once.
                self.ledger.mark_retry(
                    key,
                    step,
                    next_at=time.time(),
                    http_status=outcome.http_status,
                    code=outcome.code,
                    info="in doubt, not found by look-up: sent again",
                )
                continue
            if found is None:
                return None
            return True, found[0]

    def delay(self, retries: int, outcome: Outcome) -> float:
        if outcome.retry_after is not None:
            return outcome.retry_after
        ceiling = min(self.settings.backoff_max, self.settings.backoff * 2 ** max(0, retries - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _fail_upstream(self, work: Work, tasks: Sequence[Task], info: str) -> None:
        # Only a claimed entry takes an outcome; these were never sent (attempts shows 1).
        pairs = [(work.key, t.step) for t in tasks]
        self.ledger.mark_sending(pairs)
        self.ledger.record_outcomes(
            [
                Recorded.failed(k, s, http_status=None, code=UPSTREAM_FAILED, info=info)
                for k, s in pairs
            ]
        )
        self.count_failed(len(pairs))

    def give_up(self, claims: Sequence[tuple[str, str]], outcome: Outcome) -> None:
        """The target kept failing in a way that is not these rows' fault (unreachable, 5xx,
        429s past every retry): they go back to pending, and the run stops; failing them, and
        every row after them, would hide an outage as bad data."""
        self.ledger.record_outcomes(
            [
                Recorded.retry(
                    k,
                    s,
                    next_at=time.time(),
                    http_status=outcome.http_status,
                    code=outcome.code,
                    info=outcome.info,
                )
                for k, s in claims
            ]
        )
        if self.unreachable is None:
            self.unreachable = outcome
        self.stop("unreachable")

    # -- in doubt ------------------------------------------------------------------------

    def lookup_op(self, op: Operation, upload_type: str | None) -> Operation | None:
        """The operation whose look-up settles an in-doubt `op`; None when it has none."""
        if op.chunked:
            return OPERATIONS["createcase"] if upload_type == "cases" else None
        return op if op.lookup_field else None

    async def resolve(
        self, key: str, step: str, row: int, op: Operation, value: str | None, *, wait: bool = True
    ) -> tuple[str | None] | Literal["absent"] | None:
        """Settle an in-doubt (key, step): (id,) found and recorded succeeded; "absent": safe to
        send again; None: still in doubt (left `sending` for a later run)."""
        can_lookup = op.lookup_field is not None and value
        if self.settings.in_doubt == "stop" or not can_lookup:
            # `stop`: the user settles every in-doubt row by hand, look-up or not.
            if self.settings.in_doubt != "stop" and (
                op.idempotent or self.settings.in_doubt == "resend"
            ):
                return "absent"
            self.tally.unresolved.append((key, step, row))
            self.stop("in-doubt")
            return None
        if wait:
            await self.sleep(self.settings.grace)
        assert value is not None  # can_lookup
        for attempt in range(self.settings.lookup_attempts):
            if self.stopping:
                return None
            async with self._slots:
                await self._throttle.acquire()
                token = await self.auth.token(self._client)
                self.tally.requests += 1
                found = await self.target.lookup(self._client, op, value, token)
            if found.status == "found" and found.ids:
                self.ledger.mark_succeeded(key, step, target_id=found.ids[0], http_status=200)
                self.tally.resolved += 1
                self.tally.succeeded += 1
                if len(found.ids) > 1:
                    self.tally.duplicates.append((key, step, found.ids))
                return (found.ids[0],)
            if found.status == "absent":
                return "absent"
            if found.auth_failed and not self.auth.invalidate(token):
                self.stop("auth")
                return None
            await self.sleep(self.delay(attempt + 1, _UNKNOWN))
        self.tally.unresolved.append((key, step, row))
        return None

    async def resolve_entries(
        self, entries: Sequence[Entry], ops: Mapping[str, tuple[Operation, str | None]]
    ) -> None:
        """Settle rows a previous run left `sending`, before anything is sent again: found →
        succeeded; absent or idempotent → pending; otherwise they stay in doubt and are listed."""
        now = time.time()
        grace_until = max((e.updated_at for e in entries), default=0.0) + self.settings.grace
        if grace_until > now:
            await asyncio.sleep(grace_until - now)  # their requests may still be running

        async def one(entry: Entry) -> None:
            known = ops.get(entry.step)
            if known is None:
                self.tally.unresolved.append((entry.key, entry.step, entry.row))
                return
            op, upload_type = known
            look = self.lookup_op(op, upload_type)
            if look is None and (op.idempotent or (op.chunked and upload_type in UPSERT_KINDS)):
                self.ledger.release([(entry.key, entry.step)])
                return
            found = await self.resolve(
                entry.key, entry.step, entry.row, look or op, entry.lookup, wait=False
            )
            if found == "absent":
                self.ledger.release([(entry.key, entry.step)])

        await asyncio.gather(*(one(e) for e in entries))

    # -- uploaddata chunks -------------------------------------------------------------

    def _chunker(self, task: Task) -> Chunker:
        chunker = self._chunkers.get(task.step)
        if chunker is None:
            chunker = self._chunkers[task.step] = Chunker(self, task)
        return chunker


class _Batcher(Generic[T]):
    """Items added in the same loop turn go to `commit` together: one transaction, which
    is committed before any of the adders continues (so a claim is on disk before its
    request leaves, and an outcome before the row's next step)."""

    def __init__(self, commit: Callable[[list[T]], None]) -> None:
        self._commit = commit
        self._items: list[T] = []
        self._done: asyncio.Future[None] | None = None

    async def add(self, item: T) -> None:
        self._items.append(item)
        if self._done is None:
            loop = asyncio.get_running_loop()
            self._done = loop.create_future()
            loop.call_soon(self._flush)
        await asyncio.shield(self._done)

    def _flush(self) -> None:
        items, done = self._items, self._done
        self._items, self._done = [], None
        assert done is not None  # set by the first add of this turn
        try:
            self._commit(items)
        except BaseException as exc:  # raised again in every waiting adder
            done.set_exception(exc)
        else:
            done.set_result(None)
