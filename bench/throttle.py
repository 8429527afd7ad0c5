"""Achieved rate of the throttle on a real event loop (real sleeps, real late wake-ups).

    .venv/bin/python bench/throttle.py [--seconds 5] [--workers 16] [--uvloop]

For each target rate, `workers` tasks call `acquire()` in a loop for about `seconds`;
the achieved rate is (acquisitions - 1) / (last - first), with burst 1 so the initial
burst does not flatter it. For contrast, the same with a bucket that sleeps "until a
token is free" (the approach the throttle does not use). Prints req/s and peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from collections.abc import Awaitable, Callable

from loader.throttle import Throttle


class WaitForFreeToken:
    """The rejected design: sleep until a whole token is in the bucket, then take it."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = 1.0
        self.last = time.monotonic()
        self.lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(1.0, self.tokens + (now - self.last) * self.rate)
                self.last = now
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self.tokens) / self.rate)


async def measure(acquire: Callable[[], Awaitable[None]], seconds: float, workers: int) -> float:
    stamps: list[float] = []
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < deadline:
            await acquire()
            stamps.append(time.monotonic())

    await asyncio.gather(*(worker() for _ in range(workers)))
    stamps.sort()
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


async def main(seconds: float, workers: int) -> None:
    print(f"{'rate':>6}  {'throttle req/s':>14}  {'%':>6}  {'wait-for-token req/s':>20}  {'%':>6}")
    for rate in (50.0, 200.0):
        ours = await measure(Throttle(rate, burst=1).acquire, seconds, workers)
        naive = await measure(WaitForFreeToken(rate).acquire, seconds, workers)
        print(
            f"{rate:>6.0f}  {ours:>14.2f}  {100 * ours / rate:>5.1f}%"
            f"  {naive:>20.2f}  {100 * naive / rate:>5.1f}%"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: {peak:.1f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(main(args.seconds, args.workers))
