"""A worker process for the Redis limit tests: calls the test's HTTP server through a Redis-limited tool.

    python redis_worker.py concurrency REDIS_URL KEY HTTP_URL --calls 25 --limit 5
    python redis_worker.py rate REDIS_URL KEY HTTP_URL --calls 100 --rate 50
    python redis_worker.py hold REDIS_URL KEY HTTP_URL --limit 2 --lease 2

It prints ``READY`` once connected, waits for a ``GO`` line on stdin (so several workers start together),
runs its calls concurrently and prints ``DONE {json}``. ``hold`` takes ``--limit`` slots with calls that never
end, prints ``HOLDING`` and waits to be killed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import httpx

from penguiflow import wrap
from penguiflow.middleware import Call, CallNext
from penguiflow_middleware import RedisConcurrencyLimit, RedisRateLimit
from penguiflow_middleware.redis_limits import SLOT_KEY


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["concurrency", "rate", "hold"])
    parser.add_argument("redis_url")
    parser.add_argument("key")
    parser.add_argument("http_url")
    parser.add_argument("--calls", type=int, default=25)
    parser.add_argument("--limit", type=int, default=5)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=50.0)
    args = parser.parse_args()

    async with httpx.AsyncClient(base_url=args.http_url, timeout=30) as http:

        async def fetch(path: str) -> int:
            response = await http.get(path)
            return response.status_code

        async def hang() -> None:
            print("HOLDING", flush=True)
            await asyncio.Event().wait()

        limiter: RedisConcurrencyLimit | RedisRateLimit
        if args.mode == "rate":
            limiter = RedisRateLimit(args.redis_url, args.key, args.rate)
        else:
            limiter = RedisConcurrencyLimit(args.redis_url, args.key, args.limit, lease_s=args.lease)
        await limiter.ping()  # connect before READY
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

        if args.mode == "hold":
            held = wrap(hang, limiter, name="hold")
            await asyncio.gather(*(held() for _ in range(args.limit)))
            return
        slots: list[float] = []

        async def record_slot(call: Call, call_next: CallNext) -> object:
            if SLOT_KEY in call.context:  # the rate limiter's schedule for this call
                slots.append(call.context[SLOT_KEY])
            return await call_next(call)

        tool = wrap(fetch, limiter, record_slot, name="fetch", source=args.key)
        start = time.monotonic()
        codes = await asyncio.gather(*(tool(f"/work?worker={args.key}") for _ in range(args.calls)))
        done = {
            "codes": codes,
            "elapsed": time.monotonic() - start,
            "trips": limiter.round_trips,
            "slots": slots,
        }
        print("DONE " + json.dumps(done), flush=True)
        await limiter.aclose()


if __name__ == "__main__":
    asyncio.run(main())
