"""The request throttle shared by every request to one target host.

A token bucket (rate, burst) that adapts to what the target says:

- it TAKES ITS TOKEN FIRST and then sleeps off the debt. Waiting "until a token is free"
  loses 6-12% of the rate, because every wake-up is late and each late wake-up pushes
  the next one back; here the schedule lives in the bucket, so a late wake-up delays one
  request and never the ones after it;
- `Retry-After` (seconds or an HTTP date) pauses every caller until then;
- `x-ratelimit-replenish-rate` / `-burst-capacity` / `-remaining` (the Caseware style of
  token-bucket headers) let it follow the server's own bucket: with no configured rate it
  adopts the replenish rate; it never holds more tokens than the server says remain, and
  it runs a little below the replenish rate while the server's bucket is nearly empty;
- a bare 429 (no headers at all) halves the rate, then successes climb it back.

Everything time-related goes through the injected `clock` and `sleep`, so the tests run
on a fake clock without real sleeping.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

# A bare 429 multiplies the rate by this; successes then climb back additively.
DECREASE = 0.5
# The climb adds this fraction of the target rate per second of successful requests
# (each success adds CLIMB * target / rate), so recovery from a halving takes about
# five seconds whatever the scale of the rate.
CLIMB = 0.1
# The 429s of requests already in flight report the same overload: one decrease per
# this many seconds at most, or 16 concurrent 429s would divide the rate by 65,536.
DECREASE_COOLDOWN = 1.0
# Never throttle below this (requests per second), however many 429s arrive.
MIN_RATE = 0.1
# While the server's bucket holds at most LOW_WATER of its capacity, run at SLOW of the
# replenish rate so that it refills; back to full speed once it is above HIGH_WATER.
LOW_WATER = 0.1
HIGH_WATER = 0.5
SLOW = 0.9
# How many recent acquisitions estimate the achieved rate (for a 429 with no rate set).
RECENT = 64


@dataclass(slots=True)
class ThrottleStats:
    """Live counters for the run summary (mutable on purpose: the throttle updates them)."""

    acquired: int = 0  # tokens handed out
    too_many: int = 0  # 429 answers seen
    pauses: int = 0  # times a Retry-After pushed the pause further out
    paused_seconds: float = 0.0  # total pause time announced by Retry-After
    backoffs: int = 0  # multiplicative decreases after a bare 429
    waited_seconds: float = 0.0  # total debt slept off by callers (sum over callers)
    rate: float | None = None  # the current effective rate
    learned_rate: float | None = None  # the target's replenish rate, when it sends one


def parse_retry_after(
    headers: Mapping[str, str], *, wall_clock: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date.

    An HTTP date is measured against the response's own `Date` header when there is
    one (both come from the server's clock, so our clock's skew does not matter), else
    against `wall_clock`. Unparseable or absent: None. Dates in the past: 0.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    when = _http_date(value)
    if when is None:
        return None
    server_now = _http_date(lowered.get("date", ""))
    now = server_now if server_now is not None else wall_clock()
    return max(0.0, when - now)


def _http_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _default_burst(rate: float) -> int:
    # One second's worth of requests: enough to fill a pool of connections at start,
    # small enough that a server with a per-second limit sees no spike above it.
    return max(1, math.ceil(rate))


class Throttle:
    """Token bucket shared by all requests to one host; see the module docstring.

    `rate` is requests per second (None: no fixed limit, learn it from the target);
    `burst` is the bucket size (default: one second's worth, at least 1; a target's
    `x-ratelimit-burst-capacity` caps it).
    """

    def __init__(
        self,
        rate: float | None = None,
        burst: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a positive number of requests per second, not {rate}")
        if burst is not None and burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._configured = rate
        self._configured_burst = burst
        self._learned: float | None = None  # the server's replenish rate
        self._capacity: int | None = None  # the server's bucket size
        self._probe: float | None = None  # with no known ceiling: the rate a 429 came at
        self._base: float | None = rate  # the rate before the "server nearly empty" slowdown
        self._slow = False
        self._last_decrease = -math.inf
        now = clock()
        self._last = now
        self._tokens = float(self._burst_size())
        self._paused_until = -math.inf
        self._recent: deque[float] = deque(maxlen=RECENT)
        self.stats = ThrottleStats(rate=rate)

    def __repr__(self) -> str:
        return f"Throttle(rate={self.rate!r}, burst={self._burst_size()!r})"

    @property
    def rate(self) -> float | None:
        """The current effective rate in requests per second (None: unlimited)."""
        if self._base is None:
            return None
        return self._base * SLOW if self._slow else self._base

    @property
    def burst(self) -> int:
        return self._burst_size()

    def _ceiling(self) -> float | None:
        """The rate to climb back to: the lower of the configured and the learned rate,
        else the rate at which the last bare 429 came (None: no limit known at all)."""
        known = [r for r in (self._configured, self._learned) if r is not None]
        return min(known) if known else self._probe

    def _burst_size(self) -> int:
        return self._burst_size_for(self._base)

    def _refill(self, now: float) -> None:
        # `_last` may lie in the future (the end of a pause): no refill before then.
        if now <= self._last:
            return
        rate = self.rate
        if rate is not None:
            self._tokens = min(float(self._burst_size()), self._tokens + (now - self._last) * rate)
        self._last = now

    def _set_base(self, rate: float | None) -> None:
        # Settle the bucket at the old rate up to now before the new rate applies.
        self._refill(self._clock())
        if rate is not None:
            rate = max(MIN_RATE, rate)
        if self._base is None and rate is not None:
            # Leaving "unlimited": start with a full bucket of the new size.
            self._tokens = float(self._burst_size_for(rate))
        self._base = rate
        self.stats.rate = self.rate

    def _burst_size_for(self, rate: float | None) -> int:
        sizes = [b for b in (self._configured_burst, self._capacity) if b is not None]
        if sizes:
            return min(sizes)
        return _default_burst(rate) if rate is not None else 1

    async def acquire(self) -> None:
        """Wait for the right to send one request."""
        await self._wait_pause()
        now = self._clock()
        self._refill(now)
        rate = self.rate
        if rate is not None:
            # Take the token first (no await between reading and taking it), then sleep off
            # the debt: concurrent callers queue up by debt in the order they arrived.
            self._tokens -= 1.0
            if self._tokens < 0:
                debt = -self._tokens / rate
                self.stats.waited_seconds += debt
                await self._sleep(debt)
        # A pause may have begun while this caller slept: its token is taken, it only waits.
        await self._wait_pause()
        self.stats.acquired += 1
        self._recent.append(self._clock())

    async def _wait_pause(self) -> None:
        # A loop: a Retry-After that arrives meanwhile may push the pause further out.
        while True:
            now = self._clock()
            if now >= self._paused_until:
                return
            await self._sleep(self._paused_until - now)

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Learn from one answer of the target (call it for every response)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        if status == 429:
            self.stats.too_many += 1
        retry_after = None
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(lowered, wall_clock=self._wall_clock)
            if retry_after is not None:
                self._pause(retry_after)
        followed = self._follow_headers(lowered)
        if status == 429 and retry_after is None and not followed:
            self._decrease()
        elif 200 <= status < 300:
            self._climb()

    def _pause(self, seconds: float) -> None:
        now = self._clock()
        until = now + seconds
        if until <= self._paused_until:
            return
        self.stats.pauses += 1
        self.stats.paused_seconds += until - max(now, self._paused_until)
        self._paused_until = until
        # The server's bucket is empty: resume with one request, then paced (no stored burst).
        self._refill(now)
        self._tokens = min(self._tokens, 1.0)
        self._last = max(self._last, until)

    def _follow_headers(self, headers: Mapping[str, str]) -> bool:
        replenish = _number(headers, "x-ratelimit-replenish-rate")
        capacity = _number(headers, "x-ratelimit-burst-capacity")
        remaining = _number(headers, "x-ratelimit-remaining")
        if replenish is None and capacity is None and remaining is None:
            return False
        if capacity is not None and capacity >= 1:
            self._refill(self._clock())
            self._capacity = int(capacity)
            self._tokens = min(self._tokens, float(self._burst_size()))
        if replenish is not None and replenish > 0:
            self._learned = replenish
            self.stats.learned_rate = replenish
            ceiling = self._ceiling()
            if self._base is None or (ceiling is not None and self._base > ceiling):
                self._set_base(ceiling)
        if remaining is not None:
            self._refill(self._clock())
            # Never hold more tokens than the server has left for us.
            self._tokens = min(self._tokens, remaining)
            size = self._capacity or self._burst_size()
            if remaining <= max(1.0, LOW_WATER * size):
                self._set_slow(True)
            elif remaining >= HIGH_WATER * size:
                self._set_slow(False)
        return True

    def _set_slow(self, slow: bool) -> None:
        if slow != self._slow:
            self._refill(self._clock())
            self._slow = slow
            self.stats.rate = self.rate

    def _decrease(self) -> None:
        now = self._clock()
        if now - self._last_decrease < DECREASE_COOLDOWN:
            return
        self._last_decrease = now
        current = self.rate
        achieved = self._achieved_rate()
        candidates = [r for r in (current, achieved) if r is not None]
        start = min(candidates) if candidates else 1.0
        if self._configured is None and self._learned is None:
            # No limit is known: the rate at which the server said no becomes the ceiling.
            self._probe = start
        self.stats.backoffs += 1
        self._set_base(start * DECREASE)
        # Whatever the bucket held was already too much for the server.
        self._tokens = min(self._tokens, 0.0)

    def _climb(self) -> None:
        target = self._ceiling()
        base = self._base
        if target is None or base is None or base >= target:
            return
        self._set_base(min(target, base + CLIMB * target / base))

    def _achieved_rate(self) -> float | None:
        if len(self._recent) < 2:
            return None
        span = self._recent[-1] - self._recent[0]
        return (len(self._recent) - 1) / span if span > 0 else None
