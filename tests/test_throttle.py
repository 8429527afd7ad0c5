"""Throttle tests on virtual time: deterministic, nothing really sleeps."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Coroutine
from typing import Any

import pytest

from loader.throttle import DECREASE_COOLDOWN, MIN_RATE, Throttle, parse_retry_after


class VirtualTime:
    """A clock and a sleep for the throttle; `run` advances time to the next wake-up
    whenever every task is waiting, so concurrent callers interleave as they would."""

    def __init__(self, start: float = 1000.0, late: float = 0.0) -> None:
        self.now = start
        self.late = late  # every wake-up comes this much late, as real ones do
        self.sleeps: list[float] = []
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + seconds + self.late, next(self._seq), future))
        await future

    async def _drive(self, tasks: list[asyncio.Task[Any]]) -> None:
        while True:
            for _ in range(20):  # let every ready task run up to its next sleep
                await asyncio.sleep(0)
            if all(t.done() for t in tasks):
                return
            assert self._timers, "deadlock: tasks wait but no timer is set"
            when, _, future = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            future.set_result(None)

    def run(self, *coros: Coroutine[Any, Any, Any]) -> list[Any]:
        async def main() -> list[Any]:
            tasks = [asyncio.ensure_future(c) for c in coros]
            await self._drive(tasks)
            return [t.result() for t in tasks]

        return asyncio.run(main())


def make(
    rate: float | None = None, burst: int | None = None, **kw: Any
) -> tuple[Throttle, VirtualTime]:
    vt = VirtualTime(**kw)
    return Throttle(rate, burst, clock=vt.clock, sleep=vt.sleep, wall_clock=lambda: 0.0), vt


async def stamps(throttle: Throttle, vt: VirtualTime, n: int) -> list[float]:
    out = []
    for _ in range(n):
        await throttle.acquire()
        out.append(vt.now)
    return out


@pytest.mark.parametrize("rate", [0.5, 3.0, 50.0, 200.0])
def test_rate_is_held_exactly_over_many_acquisitions(rate: float) -> None:
    throttle, vt = make(rate, burst=1)
    (times,) = vt.run(stamps(throttle, vt, 400))
    assert times[-1] - times[0] == pytest.approx(399 / rate)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(1 / rate) and max(gaps) == pytest.approx(1 / rate)
    assert throttle.stats.acquired == 400


def test_late_wakeups_do_not_lower_the_rate() -> None:
    # Every sleep ends 3 ms late. Taking the token first means the lateness of one wake-up
    # is not added to the next one's wait: 400 requests still take 399/rate (+ one lateness).
    throttle, vt = make(200.0, burst=1, late=0.003)
    (times,) = vt.run(stamps(throttle, vt, 400))
    assert times[-1] - times[0] == pytest.approx(399 / 200 + 0.003)


def test_concurrent_callers_share_the_rate_in_arrival_order() -> None:
    throttle, vt = make(10.0, burst=5)
    results = vt.run(*(stamps(throttle, vt, 10) for _ in range(8)))
    times = sorted(t - 1000.0 for ts in results for t in ts)
    assert len(times) == 80
    assert times[:5] == [0.0] * 5  # the burst goes at once
    expected = [(k - 4) / 10 for k in range(5, 80)]
    assert times[5:] == pytest.approx(expected)


def test_burst_is_the_bucket_size_and_refills_to_it_only() -> None:
    throttle, vt = make(10.0, burst=5)
    vt.run(stamps(throttle, vt, 5))
    assert vt.sleeps == []  # five at once
    vt.run(stamps(throttle, vt, 1))
    assert vt.sleeps == [pytest.approx(0.1)]
    vt.now += 100.0  # a long idle refills the bucket to 5, not 1000
    vt.sleeps.clear()
    vt.run(stamps(throttle, vt, 6))
    assert vt.sleeps == [pytest.approx(0.1)]


@pytest.mark.parametrize(("rate", "burst"), [(20.0, 20), (0.5, 1), (2.5, 3), (None, 1)])
def test_default_burst_is_one_second_of_requests(rate: float | None, burst: int) -> None:
    assert Throttle(rate).burst == burst


@pytest.mark.parametrize(
    ("rate", "burst", "message"),
    [
        (0.0, None, "rate must be a positive number of requests per second, not 0.0"),
        (-1.0, None, "rate must be a positive number of requests per second, not -1.0"),
        (math.inf, None, "rate must be a positive number of requests per second, not inf"),
        (5.0, 0, "burst must be at least 1, not 0"),
    ],
)
def test_bad_settings_are_refused(rate: float, burst: int | None, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Throttle(rate, burst)
    assert str(info.value) == message


def test_no_rate_means_no_waiting() -> None:
    throttle, vt = make()
    (times,) = vt.run(stamps(throttle, vt, 1000))
    assert vt.sleeps == [] and throttle.rate is None and times[-1] == 1000.0


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "120"}, 120.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "-5"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({}, None),
        # an HTTP date, measured against the response's own Date header
        (
            {
                "Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT",
                "Date": "Wed, 21 Oct 2015 07:28:00 GMT",
            },
            30.0,
        ),
        # ... or against the wall clock when there is none (1445412480 = 07:28:00)
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:45 GMT"}, 45.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:00:00 GMT"}, 0.0),
    ],
)
def test_parse_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_retry_after(headers, wall_clock=lambda: 1445412480.0) == seconds


@pytest.mark.parametrize(
    ("status", "headers", "paused", "first"),
    [
        (429, {"Retry-After": "7"}, 7.0, 7.0),
        (503, {"Retry-After": "7"}, 7.0, 7.0),
        (
            429,
            {
                "Retry-After": "Wed, 21 Oct 2015 07:28:07 GMT",
                "Date": "Wed, 21 Oct 2015 07:28:00 GMT",
            },
            7.0,
            7.0,
        ),
        (200, {"Retry-After": "7"}, 0.0, 0.0),  # meaningless on a success
        # a bare 429 backs off instead: half the rate, and the stored burst is gone
        (429, {}, 0.0, 1 / 50),
    ],
)
def test_retry_after_pauses_every_caller(
    status: int, headers: dict[str, str], paused: float, first: float
) -> None:
    throttle, vt = make(100.0, burst=10)
    throttle.observe(status, headers)
    (times,) = vt.run(stamps(throttle, vt, 1))
    assert times[0] - 1000.0 == pytest.approx(first)
    assert throttle.stats.pauses == (1 if paused else 0)
    assert throttle.stats.paused_seconds == pytest.approx(paused)


def test_retry_after_keeps_the_rate_and_resumes_without_a_burst() -> None:
    throttle, vt = make(10.0, burst=10)
    throttle.observe(429, {"Retry-After": "5"})
    (times,) = vt.run(stamps(throttle, vt, 3))
    assert [t - 1000.0 for t in times] == pytest.approx([5.0, 5.1, 5.2])
    assert throttle.rate == 10.0 and throttle.stats.too_many == 1 and throttle.stats.backoffs == 0


def test_a_pause_catches_callers_already_sleeping_off_their_debt() -> None:
    throttle, vt = make(1.0, burst=1)

    async def server_says_wait() -> None:
        await vt.sleep(0.5)
        throttle.observe(429, {"Retry-After": "10"})

    first, second, _ = vt.run(stamps(throttle, vt, 1), stamps(throttle, vt, 1), server_says_wait())
    assert first == [1000.0]
    assert second == [pytest.approx(1010.5)]  # not 1001.0: the pause came while it slept


def test_a_later_shorter_retry_after_does_not_shorten_the_pause() -> None:
    throttle, vt = make(10.0)
    throttle.observe(429, {"Retry-After": "10"})
    throttle.observe(429, {"Retry-After": "2"})
    (times,) = vt.run(stamps(throttle, vt, 1))
    assert times == [pytest.approx(1010.0)] and throttle.stats.pauses == 1


BUCKET = {
    "x-ratelimit-replenish-rate": "10",
    "x-ratelimit-burst-capacity": "20",
    "x-ratelimit-remaining": "20",
}


@pytest.mark.parametrize(
    ("configured", "rate"),
    [(None, 10.0), (50.0, 10.0), (5.0, 5.0)],
)
def test_rate_headers_set_the_rate_when_lower(configured: float | None, rate: float) -> None:
    throttle, _ = make(configured)
    throttle.observe(200, BUCKET)
    assert throttle.rate == rate
    assert throttle.burst == 20 and throttle.stats.learned_rate == 10.0


def test_learned_rate_is_then_held() -> None:
    throttle, vt = make()
    throttle.observe(200, BUCKET)
    (times,) = vt.run(stamps(throttle, vt, 60))
    assert times[19] == 1000.0  # the server's burst of 20 ...
    assert times[-1] - 1000.0 == pytest.approx(40 / 10)  # ... then its replenish rate


def test_remaining_caps_the_tokens_we_hold() -> None:
    throttle, vt = make(10.0, burst=10)
    throttle.observe(200, {"x-ratelimit-remaining": "2"})
    (times,) = vt.run(stamps(throttle, vt, 3))
    assert [t - 1000.0 for t in times] == pytest.approx([0.0, 0.0, 0.1])


def test_low_remaining_slows_down_until_the_server_bucket_refills() -> None:
    throttle, _ = make()
    throttle.observe(200, {**BUCKET, "x-ratelimit-remaining": "1"})
    assert throttle.rate == pytest.approx(9.0)
    throttle.observe(200, {**BUCKET, "x-ratelimit-remaining": "5"})
    assert throttle.rate == pytest.approx(9.0)  # between the water marks: unchanged
    throttle.observe(200, {**BUCKET, "x-ratelimit-remaining": "12"})
    assert throttle.rate == 10.0


def test_429_with_rate_headers_follows_them_instead_of_halving() -> None:
    throttle, _ = make(50.0)
    throttle.observe(429, {**BUCKET, "x-ratelimit-remaining": "0"})
    assert throttle.rate == pytest.approx(9.0) and throttle.stats.backoffs == 0


def test_bare_429_halves_once_per_cooldown_then_successes_climb_back() -> None:
    throttle, vt = make(10.0)
    for _ in range(16):  # the 429s of 16 requests in flight: one overload, one decrease
        throttle.observe(429, {})
    assert throttle.rate == 5.0 and throttle.stats.backoffs == 1 and throttle.stats.too_many == 16
    vt.now += DECREASE_COOLDOWN
    throttle.observe(429, {})
    assert throttle.rate == 2.5 and throttle.stats.backoffs == 2
    seen = []
    for _ in range(100):
        throttle.observe(200, {})
        seen.append(throttle.rate)
    assert seen == sorted(seen) and seen[-1] == 10.0 and max(seen) == 10.0  # never above
    assert throttle.stats.rate == 10.0


def test_bare_429s_never_stop_the_throttle() -> None:
    throttle, vt = make(1.0)
    for _ in range(30):
        vt.now += DECREASE_COOLDOWN
        throttle.observe(429, {})
    assert throttle.rate == MIN_RATE


def test_bare_429_with_no_rate_halves_the_achieved_rate_and_climbs_back_to_it() -> None:
    throttle, vt = make()
    for _ in range(21):  # 20 requests per second, paced by the caller
        vt.run(stamps(throttle, vt, 1))
        vt.now += 0.05
    throttle.observe(429, {})
    assert throttle.rate == pytest.approx(10.0)
    for _ in range(100):
        throttle.observe(200, {})
    assert throttle.rate == pytest.approx(20.0)  # the rate the server said no at: not above


def test_repr_and_stats() -> None:
    throttle, _ = make(20.0, burst=40)
    assert repr(throttle) == "Throttle(rate=20.0, burst=40)"
    assert throttle.stats.rate == 20.0 and throttle.stats.acquired == 0
