#!/usr/bin/env python3
"""Idle visitors of the baseline in a process of their own, so that the runner can hold ours at
the same time (each process has its own file limit): ``bench/run.py``'s idle scenario.

``python3 bench/idle_clients.py --port P --count N``: N visitors of bench/baseline.py with the
same ``clients.StreamClient`` as ours (hello, the 25 s heartbeat), then ``READY``. A stdin line
``broadcast`` posts one availability event to all and answers ``RESULT {"broadcast_ms": ...}``
(when the last visitor got it); any other line, or the end of stdin, closes them and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from clients import Net, StreamClient, gather_limited, now


async def main(port: int, count: int) -> None:
    base = f"http://127.0.0.1:{port}"
    net = Net(base)
    got: list[float] = []

    def on_event(c, ev):
        if ev.get("type") == "availability":
            got.append(now())

    async def one(i):
        c = StreamClient(net.pick(i), base, baseline=True, on_event=on_event).start()
        await asyncio.wait_for(c.ready, 60)
        return c

    visitors = await gather_limited(count, one, 200)
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "broadcast":
        got.clear()
        t0 = now()
        async with net.pick(0).post(base + "/broadcast?on=0") as r:
            await r.read()
        while len(got) < count and now() - t0 < 30:
            await asyncio.sleep(0.01)
        ms = (max(got or [t0]) - t0) * 1000
        print("RESULT " + json.dumps({"broadcast_ms": ms, "received": len(got)}), flush=True)
    for c in visitors:
        c.abort()
    await net.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    a = p.parse_args()
    asyncio.run(main(a.port, a.count))
