"""`loader run`: one run around the engine, from opening the ledger to the summary.

A run: open the ledger, start a run record, settle rows an earlier run left in doubt (before
anything is sent), stream the source from the ledger's resume point (when the file and spec
are unchanged), plan batches into the ledger, feed the engine, then write `results.csv`,
`failures.csv` and `run-summary.json` beside the ledger (or in `--out`; `loader.results`
writes them).

Exit codes: 0 every row succeeded or was already done; 1 some failed or were rejected (or
the target refused a fresh token); 3 stopped with rows in doubt; 130 interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from tqdm import tqdm

from loader.auth import Credentials, ICaseworkJWT
from loader.execute import AttemptLog, Engine, Settings, Tally, Task, Work
from loader.ledger import Decision, Ledger, Plan, State
from loader.mapping import StepRef
from loader.outcomes import Outcome
from loader.pipeline import Checked, Prepared, prepare
from loader.results import write_outputs
from loader.sources import fingerprint
from loader.spec import Spec
from loader.targets.icasework import OPERATIONS, ICasework, Operation
from loader.throttle import Throttle

EXIT_OK, EXIT_FAILED, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 3, 130
BATCH = 500  # rows read and planned per ledger transaction
SEND = frozenset({Decision.NEW, Decision.PENDING, Decision.REVALIDATED})


@dataclass(frozen=True, slots=True)
class RunOptions:
    target: str | None = None  # None: an embedded sandbox beside the ledger
    ledger: Path | None = None  # default runs/<spec name>/ledger.sqlite
    out: Path | None = None  # default: the ledger's folder
    rate: float | None = None
    burst: int | None = None
    limit: int | None = None  # rows to send in this run
    retry_failed: bool = False
    log_file: Path | None = None
    progress: bool = False
    settings: Settings = field(default_factory=Settings)


@dataclass(frozen=True, slots=True)
class RunResult:
    exit_code: int
    # completed | some-failed | some-rejected | stopped | budget-stopped |
    # unreachable-stopped | auth-stopped | interrupted
    status: str
    summary: dict[str, Any]
    ledger: Path
    out_dir: Path
    lines: tuple[str, ...]  # the plain summary a user reads


def default_ledger(spec: Spec) -> Path:
    return Path("runs") / spec.name / "ledger.sqlite"


def run(
    spec: Spec,
    options: RunOptions,
    *,
    environ: Mapping[str, str] = os.environ,
    echo: Callable[[str], None] = lambda _: None,
) -> RunResult:
    """Send `spec`'s rows to the target; rerunning the same command resumes."""
    ledger_path = options.ledger or default_ledger(spec)
    out_dir = options.out or ledger_path.parent
    # A source that cannot be read, or a spec naming columns it lacks, stops here: before a
    # sandbox starts, a ledger is written or a token is asked for.
    with prepare(spec):
        pass
    with ExitStack() as stack:
        if options.target is None:
            from loader.sandbox import Sandbox, SandboxConfig

            config = SandboxConfig(store=ledger_path.parent / "sandbox.sqlite")
            ledger_path.parent.mkdir(parents=True, exist_ok=True)
            sandbox = stack.enter_context(Sandbox(config))
            target_url = sandbox.url
            credentials = Credentials(config.api_key, config.api_secret)
            echo(
                f"No --target: sending to an embedded sandbox at {sandbox.base} "
                f"(store {sandbox.store_path})."
            )
        else:
            target_url = options.target
            credentials = Credentials.from_env(environ)
        target = ICasework(target_url)
        ledger = stack.enter_context(Ledger.open(ledger_path))
        source_print = f"{fingerprint(spec.source.file)}:{spec.sha256}"
        run_id = ledger.start_run(
            spec_name=spec.name,
            spec_hash=spec.sha256,
            source=str(spec.source.file),
            source_fingerprint=source_print,
            target=target_url,
        )
        log = AttemptLog(options.log_file) if options.log_file else None
        if log is not None:
            stack.callback(log.close)
        session = _Session(spec, options, ledger, target, source_print, log, echo)
        started = time.time()
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                status = runner.run(session.main(credentials))
        except BaseException as exc:  # recorded, then re-raised as it was
            ledger.finish_run(run_id, status="error", summary={"error": type(exc).__name__})
            raise
        summary = session.summary(status, started, ledger_path)
        ledger.finish_run(run_id, status=status, summary=summary)
        write_outputs(spec, ledger, out_dir, summary)
        return RunResult(
            summary["exit_code"], status, summary, ledger_path, out_dir, session.lines(summary)
        )
    raise AssertionError("unreachable: the with block returns")  # pragma: no cover


class _Session:
    """The async half of one run."""

    def __init__(
        self,
        spec: Spec,
        options: RunOptions,
        ledger: Ledger,
        target: ICasework,
        source_print: str,
        log: AttemptLog | None,
        echo: Callable[[str], None],
    ) -> None:
        self.spec, self.options, self.ledger, self.target = spec, options, ledger, target
        self.source_print, self.log, self.echo = source_print, log, echo
        self.engine: Engine | None = None
        self.status: str | None = None
        self.rejected = 0  # rows refused this run (invalid, or a duplicate key)
        self.duplicate_keys = 0  # of those, rows whose key an earlier row already has
        self.planned = 0
        self.throttle: Throttle | None = None
        self.ops: dict[str, tuple[Operation, str | None]] = {
            s.id: (OPERATIONS[s.operation], s.upload_type) for s in spec.steps
        }

    async def main(self, credentials: Credentials) -> str:
        o = self.options
        # Every request leaves through an engine slot, so `concurrency` connections are
        # enough; more idle ones only cost httpcore's pool scan on each request.
        pool = o.settings.concurrency + 2
        limits = httpx2.Limits(max_connections=pool, max_keepalive_connections=pool)
        timeout = httpx2.Timeout(30.0, connect=10.0)
        async with httpx2.AsyncClient(limits=limits, timeout=timeout) as client:
            auth = ICaseworkJWT(self.target.token_url, credentials)
            await auth.token(client)  # refused credentials stop here, before anything is sent
            # A client bucket as deep as the server's lets both empty at once: a 429 then
            # halves the rate. A tenth of a second's worth absorbs hiccups and never
            # outruns a server whose bucket holds a second's worth.
            burst = o.burst or (max(1, round(o.rate / 10)) if o.rate else None)
            self.throttle = Throttle(o.rate, burst)
            engine = Engine(
                ledger=self.ledger,
                target=self.target,
                auth=auth,
                client=client,
                throttle=self.throttle,
                settings=o.settings,
                log=self.log,
            )
            self.engine = engine
            with _signals(engine, self.echo):
                self.status = await self._send(engine)
        return self.status

    async def _send(self, engine: Engine) -> str:
        if self.options.retry_failed:
            again = self.ledger.retry_failed()
            self.echo(f"--retry-failed: {again} failed entries are pending again.")
        doubt = self.ledger.in_doubt()
        if doubt:
            self.echo(f"{len(doubt)} entries in doubt from an earlier run: looking them up first.")
            await engine.resolve_entries(doubt, self.ops)
        if engine.tally.unresolved:
            engine.stop("in-doubt")
        if not engine.stopping:
            start = self.ledger.resume_point(self.source_print)
            with prepare(self.spec, start=start) as prepared, self._progress(prepared, engine):
                chunked = any(op.chunked for op, _ in self.ops.values())
                await engine.run(self._batches(prepared), chunked=chunked)
        reason = engine.stop_reason
        if reason == "interrupted":
            return "interrupted"
        if reason == "auth":
            return "auth-stopped"
        if reason == "in-doubt" or engine.tally.unresolved:
            return "stopped"
        if reason == "budget":
            return "budget-stopped"
        if reason == "unreachable":
            return "unreachable-stopped"
        counts = self.ledger.counts()
        if counts.states["failed"]:
            return "some-failed"
        rejected = counts.states["rejected"] + self.rejected
        return "some-rejected" if rejected else "completed"

    # -- planning --------------------------------------------------------------------

    def _batches(self, prepared: Prepared) -> Iterator[list[Work]]:
        """Read and plan the source BATCH rows at a time; yield what is to be sent."""
        limit = self.options.limit
        sent = 0
        batch: list[Checked] = []
        for checked in prepared:
            if checked.blank:
                continue
            batch.append(checked)
            if len(batch) >= BATCH:
                works = self._plan(batch)
                batch = []
                if limit is not None:
                    works = works[: max(0, limit - sent)]
                sent += len(works)
                yield works
                if limit is not None and sent >= limit:
                    return
        if batch:
            works = self._plan(batch)
            yield works if limit is None else works[: max(0, limit - sent)]

    def _plan(self, rows: Sequence[Checked]) -> list[Work]:
        plans: list[Plan] = []
        owner_of: list[int | None] = []  # per plan: index into owners, None for a rejected row
        owners: list[tuple[Checked, list[str]]] = []
        for checked in rows:
            if any(i.code == "duplicate-key" for i in checked.issues):
                self.rejected += 1  # the key belongs to its first row; never touch its entry
                self.duplicate_keys += 1
                continue
            steps = [s.id for s in self.spec.steps if s.id in checked.payloads]
            row = checked.row
            if not checked.valid:
                self.rejected += 1
                key, issues = checked.key or f"row-{row.number}", _issue_summary(checked)
                for step in steps or [self.spec.steps[0].id]:
                    plans.append(
                        Plan(
                            key,
                            step,
                            row.number,
                            row.offset,
                            None,
                            None,
                            rejected=True,
                            issues=issues,
                        )
                    )
                    owner_of.append(None)
                continue
            owners.append((checked, steps))
            for step in steps:
                payload = checked.payloads[step]
                plans.append(
                    Plan(
                        checked.key,
                        step,
                        row.number,
                        row.offset,
                        _hash(payload),
                        self._lookup(step, payload),
                    )
                )
                owner_of.append(len(owners) - 1)
        decided: list[dict[str, Decision]] = [{} for _ in owners]
        for plan, owner, decision in zip(plans, owner_of, self.ledger.plan(plans), strict=True):
            if owner is not None:
                decided[owner][plan.step] = decision
        last = rows[-1].row
        self.ledger.mark_checkpoint(self.source_print, last.number, last.offset)
        self.planned += len(rows)
        return [
            work
            for (checked, steps), decisions in zip(owners, decided, strict=True)
            for work in self._work(checked, steps, decisions)
        ]

    def _work(self, checked: Checked, steps: list[str], decided: dict[str, Decision]) -> list[Work]:
        todo = [s for s in steps if decided[s] in SEND]
        if not todo:
            return []
        work = Work(checked.key, checked.row.number, [])
        for step in steps:
            if step in todo:
                op, upload_type = self.ops[step]
                payload = checked.payloads[step]
                work.tasks.append(Task(step, op, payload, self._lookup(step, payload), upload_type))
            elif work.tasks:
                break  # a later step waits behind an unsent one: a later run sends it
            else:
                # An earlier step was done in an earlier run: its id, or its failure.
                entry = self.ledger.get(checked.key, step)
                if entry is None or entry.state is not State.SUCCEEDED:
                    if entry is not None and entry.state in (State.FAILED, State.REJECTED):
                        work.blocked = True
                    else:
                        return []  # still in doubt: the later steps wait
                else:
                    work.ids[step] = entry.target_id
        return [work]

    def _lookup(self, step: str, payload: Mapping[str, Any]) -> str | None:
        op, upload_type = self.ops[step]
        field = op.lookup_field or ("ExternalId" if upload_type == "cases" else None)
        value = payload.get(field) if field else None
        return None if value is None or isinstance(value, StepRef) else str(value)

    # -- progress and summary --------------------------------------------------------

    @contextlib.contextmanager
    def _progress(self, prepared: Prepared, engine: Engine) -> Iterator[None]:
        if not (self.options.progress and sys.stderr.isatty()):
            yield
            return
        hint = prepared.table.row_count_hint
        bar = tqdm(
            total=hint * len(self.spec.steps) if hint else None,
            unit=" req",
            file=sys.stderr,
            leave=False,
        )

        async def tick() -> None:
            while True:
                t = engine.tally
                bar.n = t.succeeded + t.failed
                bar.set_postfix(failed=t.failed, in_flight=t.in_flight, refresh=False)
                bar.refresh()
                await asyncio.sleep(0.5)

        ticker = asyncio.get_running_loop().create_task(tick())
        try:
            yield
        finally:
            ticker.cancel()
            bar.close()

    def summary(self, status: str, started: float, ledger: Path) -> dict[str, Any]:
        tally = self.engine.tally if self.engine is not None else Tally()
        counts = self.ledger.counts()
        elapsed = max(time.time() - started, 1e-9)
        code = {
            "interrupted": EXIT_INTERRUPTED,
            "stopped": EXIT_STOPPED,
            "budget-stopped": EXIT_STOPPED,
            "unreachable-stopped": EXIT_STOPPED,
            "auth-stopped": EXIT_FAILED,
            "some-failed": EXIT_FAILED,
            "some-rejected": EXIT_FAILED,
        }.get(status, EXIT_OK)
        throttle = self.throttle
        return {
            "spec": self.spec.name,
            "spec_sha256": self.spec.sha256,
            "source": str(self.spec.source.file),
            "target": self.ledger.runs()[-1].target,  # as the ledger stores it (no secrets)
            "ledger": str(ledger),
            "status": status,
            "exit_code": code,
            "elapsed_s": round(elapsed, 3),
            "rows_read": self.planned,
            "requests": tally.requests,
            "rate_per_s": round(tally.requests / elapsed, 1),
            "this_run": {
                "succeeded": tally.succeeded,
                "failed": tally.failed,
                "rejected": self.rejected,
                "duplicate_keys": self.duplicate_keys,
                "retries": tally.retries,
                "throttled": tally.throttled,
                "in_doubt": tally.in_doubt,
                "resolved_by_lookup": tally.resolved,
            },
            "throttle_rate": throttle.rate if throttle is not None else None,
            "ledger_counts": counts.to_dict(),
            "duplicates": [
                {"key": k, "step": s, "ids": list(ids)} for k, s, ids in tally.duplicates
            ],
            "unresolved": [{"key": k, "step": s, "row": r} for k, s, r in tally.unresolved],
            "unreachable": _failure(self.engine.unreachable if self.engine else None),
        }

    def lines(self, summary: dict[str, Any]) -> tuple[str, ...]:
        run = summary["this_run"]
        states = summary["ledger_counts"]["states"]
        out = [
            f"Sent {summary['requests']} requests in {summary['elapsed_s']:.1f} s "
            f"({summary['rate_per_s']} req/s): {run['succeeded']} succeeded, {run['failed']} "
            f"failed, {run['rejected']} rejected{_duplicates(run)}, {run['retries']} retried.",
            f"Ledger: {states['succeeded']} succeeded, {states['failed']} failed, "
            f"{states['rejected']} rejected, {states['pending']} pending, "
            f"{states['sending']} in doubt.",
        ]
        changed = summary["ledger_counts"]["changed"]
        if changed:
            out.append(
                f"{changed} rows changed in the source after they were sent: not sent again "
                "(a create would make a duplicate); update them on the target."
            )
        for dup in summary["duplicates"]:
            out.append(
                f"Duplicate on the target: {dup['key']} ({dup['step']}) has ids "
                f"{', '.join(dup['ids'])}; the first was recorded."
            )
        status = summary["status"]
        if status == "stopped":
            rows = summary["unresolved"]
            listed = ", ".join(f"{r['key']} ({r['step']}, row {r['row']})" for r in rows[:20])
            more = f" and {len(rows) - 20} more" if len(rows) > 20 else ""
            out.append(
                f"Stopped: {len(rows)} in doubt (sent, answer unknown, not settled by a "
                f"look-up): "
                f"{listed}{more}. Check them on the target (a rerun looks them up again "
                "where the operation has a look-up); rerun with --in-doubt resend only if "
                "they were not created."
            )
        elif status == "unreachable-stopped":
            why = summary["unreachable"]
            out.append(
                f"Stopped: the target kept failing ({why}) after "
                f"{self.options.settings.max_attempts} tries; those rows are pending, none "
                "failed. Rerun the same command when the target is back."
            )
        elif status == "budget-stopped":
            budget = self.options.settings.max_failures
            out.append(
                f"Stopped: {budget} rows failed in this run (--max-failures). Look at "
                "failures.csv for the cause, fix it, then rerun with --retry-failed."
            )
        elif status == "auth-stopped":
            out.append(
                "Stopped: the target refused a freshly issued token. Check the API "
                "key's permissions and this machine's clock, then rerun."
            )
        elif status == "interrupted":
            out.append("Interrupted: rerun the same command to resume.")
        return tuple(out)


@contextlib.contextmanager
def _signals(engine: Engine, echo: Callable[[str], None]) -> Iterator[None]:
    """First Ctrl-C: send nothing new, let requests in flight finish briefly, record them.
    Second: exit at once; rows in flight stay `sending` (in doubt, looked up next time)."""
    loop = asyncio.get_running_loop()

    def interrupt() -> None:
        if engine.stopping:
            echo("Interrupted again: exiting now; rows in flight stay in doubt.")
            os._exit(EXIT_INTERRUPTED)  # the ledger is committed; WAL keeps it whole
        echo("Interrupted: finishing requests in flight (Ctrl-C again to exit at once)...")
        engine.stop("interrupted")

    if sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
        # The event loop takes signals only in the main thread of a POSIX process (a run
        # embedded in another program); there Ctrl-C stays a KeyboardInterrupt.
        yield
        return
    loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (not on Windows): measured here, it cuts the client's
    per-request CPU, which bounds a zero-latency run on a small machine."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _hash(payload: Mapping[str, Any]) -> str:
    plain = {k: {"from_step": v.step} if isinstance(v, StepRef) else v for k, v in payload.items()}
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _issue_summary(checked: Checked) -> str:
    """Value-free: codes and places only (the ledger holds no personal data)."""
    parts = []
    for i in checked.issues:
        if i.severity == "error":
            place = i.where or f"row {checked.row.number}"
            parts.append(f"{i.code}:{i.field}@{place}" if i.field else f"{i.code}@{place}")
    return "; ".join(parts)


def _duplicates(run: Mapping[str, Any]) -> str:
    n = run["duplicate_keys"]
    return f" ({n} repeating an earlier row's key, not in the ledger)" if n else ""


def _failure(outcome: Outcome | None) -> str | None:
    """'HTTP 503 2099: Service unavailable', 'ConnectError: All connection attempts failed'."""
    if outcome is None:
        return None
    status = f"HTTP {outcome.http_status} " if outcome.http_status else ""
    code = f"{outcome.code}: " if outcome.code else ""
    return f"{status}{code}{outcome.info or 'no detail'}"
