"""Fault switches of the sandbox: latency with jitter, a token bucket, random 5xx, drops.

All state lives on the server's event-loop thread, so nothing here needs a lock.
Random decisions come from generators seeded per switch (`seed` in the config), so that
a sequential client sees the same failures and drops on every run, and turning one
switch on does not shift the decisions of another.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decision:
    """The bucket's answer to one request."""

    allowed: bool
    remaining: int  # whole tokens left after this request
    retry_after: int  # seconds until a token is free (0 when allowed)


class TokenBucket:
    """`rate` tokens per second into a bucket of `burst`; it starts full. One token a request."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def take(self, cost: float = 1.0) -> Decision:
        self._refill()
        if self._tokens >= cost:
            self._tokens -= cost
            return Decision(True, int(self._tokens), 0)
        # Retry-After is whole seconds (HTTP); round up, so a client that honours it
        # finds a token, at the price of waiting a little longer than needed.
        wait = max(1, math.ceil((cost - self._tokens) / self.rate))
        return Decision(False, int(self._tokens), wait)

    def peek(self) -> int:
        self._refill()
        return int(self._tokens)

    def headers(self, remaining: int, requested: int) -> tuple[tuple[str, str], ...]:
        return (
            ("x-ratelimit-remaining", str(remaining)),
            ("x-ratelimit-replenish-rate", _number(self.rate)),
            ("x-ratelimit-burst-capacity", _number(self.burst)),
            ("x-ratelimit-requested-tokens", str(requested)),
        )


class Dice:
    """Seeded yes/no decisions and jitter, one generator per switch."""

    def __init__(self, seed: int | None) -> None:
        def make(name: str) -> random.Random:
            return random.Random(f"{seed}:{name}") if seed is not None else random.Random()

        self._fail = make("fail")
        self._drop = make("drop")
        self._jitter = make("jitter")

    def fail(self, probability: float) -> bool:
        return probability > 0 and self._fail.random() < probability

    def drop(self, probability: float) -> bool:
        return probability > 0 and self._drop.random() < probability

    def delay(self, latency_ms: float, jitter_ms: float) -> float:
        """Seconds to wait: latency ± a uniform jitter, never below zero."""
        if jitter_ms > 0:
            latency_ms += self._jitter.uniform(-jitter_ms, jitter_ms)
        return max(0.0, latency_ms) / 1000.0


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
