"""Scenarios about delivering messages on one process: open chats and long-poll, and the
open-loop message load the file limit and the cluster chats reuse. Each function takes the
run's ``harness.Harness`` as ``bench``."""

from __future__ import annotations

import asyncio
import random

import infra
from clients import Net, StreamClient, baseline_poll, gather_limited, now
from harness import Harness, Window, dispatch, gen_note, lag_text
from infra import QuietGenerator, drain_time_wait, pct

# -- scenario: open chats -----------------------------------------------------------------


async def open_chats(bench: Harness, vis, ops) -> list[int]:
    """Make sure each visitor has an open chat, accepted by an operator; returns chat ids."""

    async def one(i):
        c = vis[i]
        if c.expect:
            return next(iter(c.expect))
        p = {
            "type": "start_chat",
            "name": f"Visitor {i}",
            "email": f"v{i}@example.org",
            "text": "Hello! I have a question about my order.",
            "client_id": f"s{i}",
            "page_url": "https://www.example-shop.com/checkout",
            "page_title": "Checkout",
        }
        a = await c.request(p)
        if a["type"] != "ack":
            raise RuntimeError(f"start_chat: {a}")
        cid = a["chat"]["id"]
        a = await ops[i % len(ops)].request({"type": "accept", "chat_id": cid})
        if a["type"] != "ack":
            raise RuntimeError(f"accept: {a}")
        return cid

    return await gather_limited(len(vis), one, 50)


async def send_and_stop(
    bench: Harness, srv, net, vis, ops, chat_ids, hot, rate, secs, visitor_share, measure
):
    """The message load over the first ``hot`` chats, then this scenario's server and
    clients stopped; returns (load figures, CPU window, metrics before, metrics after)."""
    opsby = {cid: o for o in ops for cid in o.cursors}
    senders = [(chat_ids[i], vis[i], opsby[chat_ids[i]]) for i in range(hot)]
    m0 = await bench.metrics(reset=True)
    w = Window(srv)
    r = await message_load(bench, senders, rate, secs, bench.z["warmup"], visitor_share, measure)
    win = w.close()
    m = await bench.metrics()
    for c in vis + ops:
        c.abort()
    await net.close()
    await srv.stop()
    await drain_time_wait(bench.log)
    return r, win, m0, m


async def message_load(
    bench: Harness, senders, rate, secs, warmup, visitor_share, measure, until=None, drain=10
):
    """Open loop: message k is due at t0 + k/rate, whatever happened to the ones before.

    ``senders[j] = (chat_id, visitor_client, operator_client)``; latency is measured from
    the due time to the moment the other party receives the ``message`` event.
    """
    due: dict = {}
    lat: list[float] = []
    by_role: dict[str, list[float]] = {"visitor": [], "operator": []}
    ack: list[float] = []
    errors: list = []

    def on_event(c, ev):
        t = ev.get("type")
        if t == "message":
            d = due.get(ev.get("client_id"))
            if d is not None and c is not d[1] and d[3] is None:
                d[3] = now()
                if d[2]:
                    lat.append((d[3] - d[0]) * 1000)
                    role = getattr(d[1], "role", "visitor")
                    by_role.setdefault(role, []).append(lat[-1])
        elif t in ("ack", "error") and str(ev.get("ref", "")).startswith("m"):
            d = due.get(ev["ref"][1:])
            if d is not None:
                if t == "error":
                    errors.append(ev.get("error"))
                elif d[2]:
                    ack.append((now() - d[0]) * 1000)

    measure.append(on_event)
    # The generator's own pauses would count as server latency: no garbage collection in
    # this process during the load (its heap is frozen first), and its loop lag is watched.
    quiet = QuietGenerator().start()
    n_h = len(senders)
    t0 = now() + 0.1
    t_rec = t0 + warmup
    t_end = t_rec + secs if until is None else float("inf")
    k = 0
    share = max(1, round(1 / visitor_share)) if visitor_share > 0 else 0
    while True:
        d_k = t0 + k / rate
        if d_k >= t_end or (until is not None and until.is_set()):
            break
        wait = d_k - now()
        if wait > 0:
            await asyncio.sleep(wait)
        t = now()
        while k < 10**9:
            d_k = t0 + k / rate
            if d_k > t or d_k >= t_end:
                break
            cid, v, o = senders[k % n_h]
            j = k // n_h
            sender = v if share and j % share == 0 else o
            cl = f"{k}-{random.getrandbits(32):08x}"
            rec = d_k >= t_rec
            due[cl] = [d_k, sender, rec, None]
            text = f"Message {j} in chat {cid}: is the garden spade still in stock?"
            sender.send_nowait(
                {
                    "type": "message",
                    "id": "m" + cl,
                    "chat_id": cid,
                    "text": text,
                    "client_id": cl,
                }
            )
            k += 1
    quiet.stop_sampling()
    recorded = [d for d in due.values() if d[2]]
    await bench.wait_until(lambda: all(d[3] for d in recorded), drain, 0.1)
    quiet.end()
    sent = len(recorded)
    delivered = sum(1 for d in recorded if d[3])
    measure.remove(on_event)
    gl = quiet.lag_figures()
    done = [d[3] for d in recorded if d[3]]
    span = (max(done) - min(d[0] for d in recorded)) if done else None
    return dict(
        sent=sent,
        delivered=delivered,
        lost=sent - delivered,
        errors=errors,
        lat=lat,
        lat_by_sender=by_role,
        ack=ack,
        gen_lag=gl,
        total_sent=len(due),
        delivered_span_s=span,
    )


async def s_chats(bench: Harness) -> None:
    z = bench.z
    n, hot, rate, secs = z["chats"], z["hot"], z["rate"], z["chat_secs"]
    share = min(0.3, 1.5 / (rate / hot))
    measure: list = []
    on_event = dispatch(measure)
    srv = await bench.server().start()
    ops = await bench.operators(on_event)
    net = Net(bench.base)
    t0 = now()
    vis = await bench.connect_visitors(net, bench.tokens[:n], on_event, beacon=False)
    chat_ids = await open_chats(bench, vis, ops)
    setup_s = now() - t0
    bench.log(f"  {n:,} chats open in {setup_s:.1f} s")
    await bench.pause(2)
    r, win, _m0, m = await send_and_stop(
        bench, srv, net, vis, ops, chat_ids, hot, rate, secs, share, measure
    )
    # baseline: the same clients, rooms instead of chats
    bl = await bench.baseline().start()
    bnet = Net(bench.base)
    bmeasure: list = []
    bon = dispatch(bmeasure)
    rooms_of = [[i for i in range(n) if i % len(ops) == j] for j in range(len(ops))]
    bops = [
        StreamClient(
            bnet.pick(j), bench.base, baseline=True, rooms=rooms_of[j], on_event=bon
        ).start()
        for j in range(len(ops))
    ]

    async def bone(i):
        c = StreamClient(bnet.pick(i), bench.base, baseline=True, rooms=[i], on_event=bon)
        c.start()
        await asyncio.wait_for(c.ready, 60)
        return c

    bvis = await gather_limited(n, bone, 200)
    await asyncio.gather(*(o.ready for o in bops))
    bsend = [(i, bvis[i], bops[i % len(ops)]) for i in range(hot)]
    bw = Window(bl)
    br = await message_load(bench, bsend, rate, secs, z["warmup"], share, bmeasure)
    bwin = bw.close()
    for c in bvis + bops:
        c.abort()
    await bnet.close()
    await bl.stop()
    await drain_time_wait(bench.log)
    res = {k: pct(r["lat"], p) for k, p in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))}
    bres = {k: pct(br["lat"], p) for k, p in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))}
    bench.details["chats"] = dict(
        setup_s=round(setup_s, 1),
        window=win,
        metrics=m,
        sent=r["sent"],
        lost=r["lost"],
        errors=r["errors"][:20],
        n_errors=len(r["errors"]),
        latency_ms=res,
        ack_p99_ms=pct(r["ack"], 0.99),
        visitor_share=share,
        baseline=dict(latency_ms=bres, window=bwin, lost=br["lost"], sent=br["sent"]),
    )
    g, note = gen_note(win, r)
    lag = lag_text(m)
    sc = f"open chats ({n:,}; {rate:,} msg/s over {hot})"
    for key, target, lim in (("p50", "≤ 2", 2), ("p99", "≤ 10", 10), ("p999", None, None)):
        v, b = res[key], bres[key]
        bench.row(
            sc,
            f"delivery {key.replace('p999', 'p99.9')}, ms",
            v and round(v, 2),
            target,
            (v is not None and v <= lim) if lim else None,
            b and round(b, 2),
            round(v / b, 2) if v and b else None,
            g,
            lag,
            note,
        )
    bad = r["lost"] + len(r["errors"])
    bench.row(
        sc,
        "lost / errors",
        f"{r['lost']} / {len(r['errors'])}",
        "0",
        bad == 0,
        f"{br['lost']} / 0",
        None,
        g,
        lag,
        f"{r['sent']:,} messages measured",
    )


# -- scenario: long-poll ------------------------------------------------------------------

#: How long both servers hold a poll ([realtime] poll_timeout; bench/baseline.py).
POLL_HOLD_S = 25


async def s_longpoll(bench: Harness) -> None:
    z = bench.z
    n, hot, rate, secs = z["polls"], z["poll_hot"], z["poll_rate"], z["poll_secs"]
    measure: list = []
    on_event = dispatch(measure)
    srv = await bench.server().start()
    ops = await bench.operators(on_event)
    net = Net(bench.base)
    toks = bench.tokens[z["chats"] : z["chats"] + n]

    async def one(i):
        await asyncio.sleep(polls_at + i * spread - now())
        c = StreamClient(net.pick(i), bench.base, "visitor", toks[i], on_event)
        c.mode, c.poll_since = "poll", now()
        c.start()
        await asyncio.wait_for(c.ready, 60)
        return c

    # As on a real site, each poll's hold ends at its own time: polls begin evenly over one
    # hold (both servers hold a poll 25 s), so that about n / 25 come back each second instead
    # of all of them at once 25 s after a burst of starts. The baseline's begin the same way.
    spread = 0 if infra.SMOKE else POLL_HOLD_S / n
    polls_at = now()
    vis = list(await asyncio.gather(*(one(i) for i in range(n))))
    chat_ids = await open_chats(bench, vis[:hot], ops)
    await bench.pause(1)
    r, win, m0, m = await send_and_stop(
        bench, srv, net, vis, ops, chat_ids, hot, rate, secs, 0, measure
    )
    # baseline: held GETs woken by a relayed message
    bl = await bench.baseline().start()
    bnet = Net(bench.base)
    bmeasure: list = []
    bon = dispatch(bmeasure)
    stop: list = []

    async def bone(i):
        await asyncio.sleep(polls_at + i * spread - now())
        await baseline_poll(bnet.pick(i), bench.base, i, bon, stop)

    polls_at = now()
    polls = [asyncio.ensure_future(bone(i)) for i in range(n)]
    await asyncio.sleep(polls_at + n * spread - now())
    bops = [
        StreamClient(bnet.pick(j), bench.base, baseline=True, rooms=[], on_event=bon).start()
        for j in range(len(ops))
    ]
    await asyncio.gather(*(o.ready for o in bops))
    await bench.pause(1)
    poller = object()
    bsend = [(i, poller, bops[i % len(ops)]) for i in range(hot)]
    bw = Window(bl)
    br = await message_load(bench, bsend, rate, secs, z["warmup"], 0, bmeasure)
    bwin = bw.close()
    stop.append(1)
    for t in polls:
        t.cancel()
    for c in bops:
        c.abort()
    await bnet.close()
    await bl.stop()
    await drain_time_wait(bench.log)
    v, b = pct(r["lat"], 0.99), pct(br["lat"], 0.99)
    bench.details["longpoll"] = dict(
        held_before=m0.get("poll_conns"),
        window=win,
        metrics=m,
        p50=pct(r["lat"], 0.5),
        p99=v,
        lost=r["lost"],
        errors=len(r["errors"]),
        sent=r["sent"],
        baseline=dict(p50=pct(br["lat"], 0.5), p99=b, window=bwin, lost=br["lost"]),
    )
    g, note = gen_note(win, r)
    sc = f"long-poll ({n:,} held; {rate} msg/s)"
    held = m0.get("poll_conns")
    bench.row(sc, "polls held", held, f"{n:,}", (held or 0) >= n, None, None, g, lag_text(m))
    bench.row(
        sc,
        "delivery p99, ms",
        v and round(v, 2),
        "≤ 20",
        v is not None and v <= 20,
        b and round(b, 2),
        round(v / b, 2) if v and b else None,
        g,
        lag_text(m),
        f"lost {r['lost']}, errors {len(r['errors'])}" + (f"; {note}" if note else ""),
    )
