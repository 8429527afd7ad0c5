"""uploaddata chunks: the rows of one uploaddata step, gathered and sent many to a request.

Invariants, on top of the engine's (DESIGN §5–§6):
- every row of a chunk is claimed (`sending`) in one commit before the chunk leaves, and its
  outcomes are recorded in one transaction, one per row, from the answer's per-row results;
  a row the answer does not mention fails (`no-result`);
- a chunk of upserts (`UPSERT_KINDS`) whose answer is in doubt is retried like a temporary
  error; a chunk of creates in doubt is settled row by row by look-up, and only rows found
  absent are sent again;
- each row's future is settled once: (succeeded, target id), or None when the row is left
  pending or in doubt for a later run.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2

from loader.ledger import Outcome as Recorded
from loader.outcomes import Kind, Outcome

if TYPE_CHECKING:
    from loader.execute import Engine, Result, Task, Work

# uploaddata kinds whose rows are upserts: a chunk in doubt is simply sent again.
UPSERT_KINDS = frozenset({"customers", "accounts"})


@dataclass(slots=True)
class _Item:
    work: Work
    task: Task
    payload: dict[str, Any]
    future: asyncio.Future[Result]


def _settle(items: Sequence[_Item], result: Result) -> None:
    for item in items:
        if not item.future.done():
            item.future.set_result(result)


class Chunker:
    """Gathers the rows of one uploaddata step into chunks of at most `upload_limit` rows; a
    partial chunk goes after `upload_linger` seconds, so a slow source never stalls it."""

    def __init__(self, engine: Engine, task: Task) -> None:
        self._engine = engine
        self._op, self._step, self._kind = task.op, task.step, task.upload_type or ""
        self._items: list[_Item] = []
        self._timer: asyncio.TimerHandle | None = None

    def submit(self, work: Work, task: Task, payload: dict[str, Any]) -> asyncio.Future[Result]:
        loop = asyncio.get_running_loop()
        item = _Item(work, task, payload, loop.create_future())
        self._items.append(item)
        if len(self._items) >= self._engine.settings.upload_limit:
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._engine.settings.upload_linger, self.flush)
        return item.future

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._items:
            return
        items, self._items = self._items, []
        if self._engine.stopping:
            _settle(items, None)
            return
        self._engine.spawn(self._send(items))

    async def _send(self, items: list[_Item]) -> None:
        """One chunk: all its rows claimed in one commit, then one outcome per row."""
        engine, op, step, kind = self._engine, self._op, self._step, self._kind
        pending = items
        retries = 0
        while pending:
            claims = [(item.work.key, step) for item in pending]
            rows = [item.payload for item in pending]
            sent = await engine.request(
                op,
                functools.partial(engine.target.upload_request, kind, rows),
                f"chunk of {len(pending)}",
                step,
                pending[0].work.row,
                claims,
            )
            if sent is None:
                _settle(pending, None)
                return
            outcome, response, token = sent
            if outcome.kind is Kind.OK:
                assert response is not None
                self._results(pending, response, outcome)
                return
            if outcome.kind is Kind.FAILED:
                self._record(
                    [
                        Recorded.failed(
                            k,
                            s,
                            http_status=outcome.http_status,
                            code=outcome.code,
                            info=outcome.info,
                        )
                        for k, s in claims
                    ]
                )
                _settle(pending, (False, None))
                return
            if outcome.kind is Kind.AUTH:
                engine.ledger.release(claims)
                if engine.auth.invalidate(token):
                    continue
                engine.stop("auth")
                _settle(pending, None)
                return
            if outcome.kind is Kind.RETRY or kind in UPSERT_KINDS:
                retries += outcome.http_status != 429
                if retries >= engine.settings.max_attempts:
                    engine.give_up(claims, outcome)
                    _settle(pending, None)
                    return
                delay = engine.delay(retries, outcome)
                engine.tally.retries += 1
                due = time.time() + delay
                engine.ledger.record_outcomes(
                    [
                        Recorded.retry(
                            k,
                            s,
                            next_at=due,
                            http_status=outcome.http_status,
                            code=outcome.code,
                            info=outcome.info,
                        )
                        for k, s in claims
                    ]
                )
                await engine.sleep(delay)
                continue
            # A chunk of creates in doubt: settle each row by its own look-up.
            engine.tally.in_doubt += 1
            await engine.sleep(engine.settings.grace)
            look = engine.lookup_op(op, kind) or op
            found = await asyncio.gather(
                *(
                    engine.resolve(i.work.key, step, i.work.row, look, i.task.lookup, wait=False)
                    for i in pending
                )
            )
            again = [
                item for item, result in zip(pending, found, strict=True) if result == "absent"
            ]
            for item, result in zip(pending, found, strict=True):
                if result != "absent":
                    item.future.set_result(None if result is None else (True, result[0]))
            if again:
                engine.ledger.record_outcomes(
                    [
                        Recorded.retry(
                            i.work.key,
                            step,
                            next_at=time.time(),
                            http_status=None,
                            code=outcome.code,
                            info="in doubt, not found: sent again",
                        )
                        for i in again
                    ]
                )
            pending = again

    def _record(self, outcomes: list[Recorded]) -> None:
        """One transaction for many outcomes (a chunk's rows)."""
        engine = self._engine
        engine.ledger.record_outcomes(outcomes)
        for o in outcomes:
            if o.state == "succeeded":
                engine.tally.succeeded += 1
            else:
                engine.count_failed()

    def _results(self, items: list[_Item], response: httpx2.Response, outcome: Outcome) -> None:
        """One outcome per row, from the answer's per-row results, in one transaction."""
        step = self._step
        by_row = {r.row: r for r in self._engine.target.upload_results(response)}
        outcomes: list[Recorded] = []
        results: list[Result] = []
        for number, item in enumerate(items, start=1):
            result = by_row.get(number)
            key, status = item.work.key, outcome.http_status
            if result is not None and result.status in ("created", "updated"):
                outcomes.append(
                    Recorded.succeeded(key, step, target_id=result.id, http_status=status)
                )
                results.append((True, result.id))
            elif result is not None:
                outcomes.append(
                    Recorded.failed(
                        key, step, http_status=status, code=result.code, info=result.info
                    )
                )
                results.append((False, None))
            else:
                info = "the upload answer has no result for this row"
                outcomes.append(
                    Recorded.failed(key, step, http_status=status, code="no-result", info=info)
                )
                results.append((False, None))
        self._record(outcomes)
        for item, done in zip(items, results, strict=True):
            item.future.set_result(done)
