"""Scenarios about page views and the visitors monitor: page views (wrk) and the monitor
fan-out, and the beacon load the cluster fan-out reuses. Each function takes the run's
``harness.Harness`` as ``bench``."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import infra
from clients import (
    BeaconPool,
    MonitorWatch,
    Net,
    StreamClient,
    fanout_beacon,
    gather_limited,
    now,
    track,
)
from harness import Harness, Window, gen_note, lag_text
from infra import BENCH, GEN_CPU, Proc, QuietGenerator, drain_time_wait, fmt, free_port, pct

# -- scenario: page views -----------------------------------------------------------------


async def s_pageviews(bench: Harness) -> None:
    z = bench.z
    sc = "page views (POST /api/visitor/track, wrk)"
    stored_before = page_views_stored(bench)  # earlier scenarios sent beacons too
    srv = await bench.server().start()
    bench.track_built = await bench.probe_track()
    if not bench.track_built:
        await srv.stop()
        bench.row(
            sc,
            "beacons/s",
            "not built yet",
            "≥ 5,000 and ≥ 0.7 × baseline",
            None,
            note="issue 5: the endpoint does not exist yet",
        )
        return
    if not shutil.which("wrk"):
        await srv.stop()
        bench.row(sc, "beacons/s", "skipped: wrk not installed", "≥ 5,000", None)
        return
    net = Net(bench.base)
    toks = bench.tokens[: z["pv_tokens"]]
    st = await gather_limited(len(toks), lambda i: track(net.pick(i), bench.base, toks[i], i))
    tokfile = bench.work / "pv_tokens.txt"
    tokfile.write_text("\n".join(toks) + "\n")
    # 1. the beacon path alone (what the target and the baseline are about), beside the
    # baseline: both servers run on the server's core, and wrk posts to one, then the other,
    # in turns of a few seconds (ABBA), so that both meet the same machine
    bport = free_port()
    bl = await bench.baseline(port=bport).start()
    bbase = f"http://127.0.0.1:{bport}"
    await wrk(bench, bbase + "/track", tokfile, secs=1)  # its warm-up, as ours had
    await bench.pause(1.5)
    await bench.metrics(reset=True)
    runs: dict[str, list] = {"ours": [], "baseline": []}
    wins = []
    part = max(1, z["pv_secs"] // z["pv_rounds"])
    for r in range(z["pv_rounds"]):
        for who in ("ours", "baseline") if r % 2 == 0 else ("baseline", "ours"):
            if who == "ours":
                w = Window(srv)
                runs[who].append(await wrk(bench, bench.base + "/api/visitor/track", tokfile, part))
                wins.append(w.close(extra_cpu=runs[who][-1]["cpu_s"]))
            else:
                runs[who].append(await wrk(bench, bbase + "/track", tokfile, part))
    await bl.stop()
    res, bres = combined(runs["ours"]), combined(runs["baseline"])
    m = await bench.metrics(reset=True)
    # 2. the same with 10 operator consoles watching the monitor (visitors_changed)
    ops = await bench.operators(n=10)
    await bench.pause(1)
    await bench.metrics(reset=True)
    res2 = await wrk(bench, bench.base + "/api/visitor/track", tokfile)
    m2 = await bench.metrics()
    await asyncio.sleep(1.2 if infra.SMOKE else 2)  # the next group commit
    for c in ops:
        c.abort()
    await net.close()
    await srv.stop()
    stored = page_views_stored(bench) - stored_before
    await drain_time_wait(bench.log)
    bench.details["pageviews"] = dict(
        ours=res,
        ours_with_consoles=res2,
        baseline=bres,
        rounds={k: [r["rps"] for r in v] for k, v in runs.items()},
        windows=wins,
        metrics=m,
        metrics_with_consoles=m2,
        warm_status=sorted(set(st)),
        stored_rows=stored,
    )
    g = f"{res['cpu_pct']:.0f}% (wrk)"
    note = "INVALID: wrk saturated its core" if res["cpu_pct"] >= 90 else ""
    rps, brps = res["rps"], bres["rps"]
    ratio = round(rps / brps, 2) if brps else None
    okv = rps >= 5000 and (ratio or 0) >= 0.7 and res["non2xx"] == 0
    sent = sum(r["requests"] or 0 for r in (res, res2)) + len(toks)
    turns = ", ".join(f"{r['rps']:.0f}" for r in runs["ours"])
    bturns = ", ".join(f"{r['rps']:.0f}" for r in runs["baseline"])
    bench.row(
        sc,
        "beacons/s",
        round(rps),
        "≥ 5,000 and ≥ 0.7 × baseline",
        okv,
        round(brps),
        ratio,
        g,
        lag_text(m),
        f"non-2xx {res['non2xx']}, p99 {res['p99_ms']} ms; {stored:,} page views stored, "
        f"{sent:,} answered (both loads and the warm-up); {z['pv_rounds']} turns of {part} s "
        f"each, ours {turns}/s, baseline {bturns}/s" + (f"; {note}" if note else ""),
    )
    rps2 = res2["rps"]
    bench.row(
        sc,
        "beacons/s, 10 consoles watching",
        round(rps2),
        None,
        None,
        round(brps),
        round(rps2 / brps, 2) if brps else None,
        f"{res2['cpu_pct']:.0f}% (wrk)",
        lag_text(m2),
        f"non-2xx {res2['non2xx']}; the monitor's coalesced visitors_changed to each console",
    )


def page_views_stored(bench: Harness) -> int:
    """Rows in cutelive's page_view table, read while no server runs."""
    db = sqlite3.connect(f"file:{bench.data_dir / 'cutelive.db'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM page_view").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        db.close()


def combined(runs: list[dict]) -> dict:
    """Several ``wrk`` runs as one: requests over their total time, the worst p99."""
    requests = sum(r["requests"] or 0 for r in runs)
    secs = sum((r["requests"] or 0) / r["rps"] for r in runs if r["rps"])
    cpu = sum(r["cpu_s"] for r in runs)
    return {
        "requests": requests,
        "rps": requests / secs if secs else 0.0,
        "non2xx": sum(r["non2xx"] for r in runs),
        "p99_ms": max((r["p99_ms"] for r in runs if r["p99_ms"] is not None), default=None),
        "cpu_s": cpu,
        "cpu_pct": round(100 * cpu / secs, 1) if secs else 0.0,
    }


async def wrk(bench: Harness, url: str, tokfile: Path, secs: int | None = None) -> dict:
    z = bench.z
    secs = secs or z["pv_secs"]
    cmd = [
        "wrk",
        "-t1",
        f"-c{z['wrk_conns']}",
        f"-d{secs}s",
        "--latency",
        "-s",
        str(BENCH / "track.lua"),
        url,
        "--",
        str(tokfile),
    ]
    p = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {GEN_CPU}),
    )
    out = await asyncio.get_running_loop().run_in_executor(None, p.stdout.read)
    _, _, ru = os.wait4(p.pid, 0)
    cpu = ru.ru_utime + ru.ru_stime
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    done = re.search(r"(\d+) requests in", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = None
    if p99:
        p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    return {
        "requests": int(done.group(1)) if done else None,
        "rps": rps,
        "non2xx": int(non.group(1)) if non else 0,
        "p99_ms": p99_ms,
        "cpu_s": cpu,
        "cpu_pct": round(100 * cpu / secs, 1),
        "output": out,
    }


# -- scenario: monitor fan-out ------------------------------------------------------------

#: PROTOCOL §6: ``visitors_changed`` is "coalesced, at most one per 150 ms" (the server's
#: monitor flushes the rows that changed 150 ms after the first change of a window).
COALESCE_MS = 150


async def beacon_load(
    bench: Harness,
    srv: Proc,
    path: str,
    watch: MonitorWatch,
    consoles: int,
    parts=None,
    rate=None,
    first: int = 0,
) -> dict:
    """Open loop: beacon k (visitor k mod V, its round k div V) is due at t0 + k/rate,
    whatever happened to the ones before. Then waits for every answer and until every
    console lists every visitor at its last accepted page (at most 10 s). The beacons go
    to ``srv``; ``parts`` as in ``Window`` (the server side is several processes); the
    visitors are the tokens from ``first`` on."""
    z = bench.z
    rate, secs, nv = rate or z["fan_rate"], z["fan_secs"], watch.nv
    toks = bench.tokens[first : first + nv]
    pool = BeaconPool("127.0.0.1", srv.port, path, z["wrk_conns"]).start()
    # As in message_load: no garbage collection in this process during the load, and its
    # own loop lag is watched (it would count as the server's latency).
    quiet = QuietGenerator().start()
    t0 = now() + 0.1
    t_rec = t0 + z["warmup"]
    t_end = t_rec + secs
    watch.window = (t_rec, t_end)
    w = Window(None if parts else srv, parts=parts)
    k = 0
    while True:
        d_k = t0 + k / rate
        if d_k >= t_end:
            break
        wait = d_k - now()
        if wait > 0:
            await asyncio.sleep(wait)
        t = now()
        while True:
            d_k = t0 + k / rate
            if d_k > t or d_k >= t_end:
                break
            vi, rnd = k % nv, k // nv
            watch.sent(vi, rnd, d_k, d_k >= t_rec)
            pool.send(
                fanout_beacon(toks[vi], vi, rnd),
                lambda st, vi=vi, rnd=rnd: watch.answered(vi, rnd, st),
            )
            k += 1
    win = w.close()
    quiet.stop_sampling()
    t_last = now()
    await bench.wait_until(lambda: pool.answered >= k, 30, 0.05)
    answered_s = now() - t_last
    await bench.wait_until(lambda: watch.converged(consoles), 10, 0.2)
    converged_s = now() - t_last
    quiet.end()
    await pool.close()
    recorded = sum(sum(r) for r in watch.rec)
    return dict(
        sent=k,
        recorded=recorded,
        arrivals=min(k, nv),
        answered=pool.answered,
        statuses={str(s): v for s, v in pool.statuses.items()},
        errors=sum(v for s, v in pool.statuses.items() if s not in (200, 204)),
        lost=watch.missing(consoles),
        lat=watch.lat,
        window=win,
        answered_s=round(answered_s, 2),
        converged_s=round(converged_s, 2),
        gen_lag=quiet.lag_figures(),
    )


def per_console(watch: MonitorWatch, consoles: int, secs: float) -> dict:
    """visitors_changed received per console per second, rows per event, gaps between."""
    sts = list(watch.consoles.values())
    rates = [st["events"] / secs for st in sts] + [0.0] * (consoles - len(sts))
    events = sum(st["events"] for st in sts)
    gaps = [
        (b - a) * 1000 for st in sts for a, b in zip(st["times"], st["times"][1:], strict=False)
    ]
    return dict(
        mean=sum(rates) / max(1, len(rates)),
        min=min(rates, default=0.0),
        max=max(rates, default=0.0),
        rows_per_event=sum(st["rows"] for st in sts) / max(1, events),
        gap_p50_ms=pct(gaps, 0.5),
        gap_min_ms=min(gaps, default=None),
    )


def fan_mix(r: dict, nc: int, nv: int) -> tuple[str, str]:
    measured = f"{r['recorded']:,} beacons measured × {nc} consoles"
    mix = (
        f"{r['sent']:,} beacons of {nv:,} visitors: {r['arrivals']:,} arrivals (a first "
        f"beacon starts a visit), {r['sent'] - r['arrivals']:,} page changes"
    )
    return measured, mix


def fan_latency(lat: list[float]) -> dict:
    return {k: pct(lat, p) for k, p in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))}


async def s_fanout(bench: Harness) -> None:
    z = bench.z
    nc, rate, nv, secs = z["fan_consoles"], z["fan_rate"], z["fan_visitors"], z["fan_secs"]
    sc = f"monitor fan-out ({nc} consoles; {rate} visitor events/s)"
    srv = await bench.server().start()
    bench.track_built = await bench.probe_track()
    if not bench.track_built:
        await srv.stop()
        bench.row(sc, "change on every console p99, ms", "not built yet", "≤ 250", None)
        return
    watch = MonitorWatch(nv)
    ops = await bench.operators(watch.on_event, n=nc)
    await bench.pause(1)
    await bench.metrics(reset=True)
    r = await beacon_load(bench, srv, "/api/visitor/track", watch, nc)
    m = await bench.metrics()
    async with bench.op_sessions[0].get(bench.base + "/api/console/visitors") as resp:
        listed = len((await resp.json(content_type=None))["visitors"])
    drops = sum(len(c.close_codes) for c in ops)
    for c in ops:
        c.abort()
    await srv.stop()
    await drain_time_wait(bench.log)
    # baseline: each beacon fanned out at once to every socket in the monitor room (-1)
    bl = await bench.baseline().start()
    bnet = Net(bench.base)
    bwatch = MonitorWatch(nv)
    bops = [
        StreamClient(
            bnet.pick(j), bench.base, baseline=True, rooms=[-1], on_event=bwatch.on_event
        ).start()
        for j in range(nc)
    ]
    await asyncio.gather(*(asyncio.wait_for(o.ready, 30) for o in bops))
    await bench.pause(1)
    br = await beacon_load(bench, bl, "/track", bwatch, nc)
    for c in bops:
        c.abort()
    await bnet.close()
    await bl.stop()
    await drain_time_wait(bench.log)
    lat, blat = fan_latency(r["lat"]), fan_latency(br["lat"])
    ev, bev = per_console(watch, nc, secs), per_console(bwatch, nc, secs)
    win, bwin = r.pop("window"), br.pop("window")
    r.pop("lat"), br.pop("lat")
    bench.details["fanout"] = dict(
        ours=dict(r, latency_ms=lat, per_console=ev, window=win, metrics=m, listed=listed),
        baseline=dict(br, latency_ms=blat, per_console=bev, window=bwin),
        console_disconnects=drops,
    )
    g, note = gen_note(win, r)
    _, bnote = gen_note(bwin, br)
    if bnote:
        note += ("; " if note else "") + f"baseline run: {bnote}"
    lag = lag_text(m)
    measured, mix = fan_mix(r, nc, nv)
    coalesce = (
        f"the server coalesces visitors_changed over {COALESCE_MS} ms (PROTOCOL §6), "
        f"so up to ~{COALESCE_MS} ms is expected; the baseline sends each beacon at "
        "once (no ratio)"
    )
    bench.row(
        sc,
        "change on every console p50, ms",
        lat["p50"] and round(lat["p50"], 1),
        None,
        None,
        blat["p50"] and round(blat["p50"], 1),
        None,
        g,
        lag,
        f"{measured}; {mix}" + (f"; {note}" if note else ""),
    )
    p99 = lat["p99"]
    bench.row(
        sc,
        "change on every console p99, ms",
        p99 and round(p99, 1),
        "≤ 250",
        p99 is not None and p99 <= 250,
        blat["p99"] and round(blat["p99"], 1),
        None,
        g,
        lag,
        f"from the beacon's due time until the console has the row; {coalesce}; "
        f"max {fmt(lat['max'], 0)} ms (baseline {fmt(blat['max'], 0)} ms)"
        + (f"; {note}" if note else ""),
    )
    bench.row(
        sc,
        "visitors_changed per console per s",
        round(ev["mean"], 1),
        None,
        None,
        round(bev["mean"], 1),
        None,
        g,
        lag,
        f"at most {1000 / COALESCE_MS:.1f}/s when coalesced; consoles "
        f"{ev['min']:.1f}-{ev['max']:.1f}/s, {ev['rows_per_event']:.1f} rows per event, "
        f"gap p50 {fmt(ev['gap_p50_ms'], 0)} ms, min {fmt(ev['gap_min_ms'], 0)} ms; "
        f"baseline one event per beacon",
    )
    bad = r["lost"] + r["errors"] + drops
    bench.row(
        sc,
        "lost / beacon errors / console drops",
        f"{r['lost']} / {r['errors']} / {drops}",
        "0 / 0 / 0",
        bad == 0,
        f"{br['lost']} / {br['errors']} / 0",
        None,
        g,
        lag,
        f"lost = (console, visitor) pairs where the console does not list the visitor at "
        f"its last page {r['converged_s']:.1f} s after the last beacon was due (every "
        f"beacon answered {r['answered_s']:.1f} s after); GET /api/console/visitors lists "
        f"{listed:,} of {nv:,}; statuses "
        + ", ".join(f"{s} {v:,}" for s, v in sorted(r["statuses"].items())),
    )
    cpu, bcpu = win["server_cpu_pct"], bwin["server_cpu_pct"]
    bench.row(
        sc,
        "server CPU, % of a core",
        cpu,
        None,
        None,
        bcpu,
        round(cpu / max(bcpu, 0.1), 2),
        g,
        lag,
        f"over the {z['warmup'] + secs:g} s of beacons; generator "
        f"{win['gen_cpu_pct']:.0f}% here, {bwin['gen_cpu_pct']:.0f}% for the baseline",
    )
