"""Scenarios about holding connections: idle visitors (with the half-open clients), the
reconnect storm and the file limit. Each function takes the run's ``harness.Harness`` as
``bench``."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys

from clients import Net, now, session
from harness import Harness, Window, dispatch, gen_note, lag_text
from infra import BENCH, GEN_CPU, ReadyProbe, drain_time_wait, fmt, free_port, pct
from scen_chats import message_load, open_chats


# -- scenario: idle visitors --------------------------------------------------------------
async def s_idle(bench: Harness) -> None:
    """Idle visitors on ours and on the baseline. Both servers hold their visitors at once and
    their CPU is measured over the same window, so that both meet the same machine (its speed
    moves by a third within minutes). Ours are held by this process, the baseline's by
    bench/idle_clients.py on the same core with the same client code (one process's file
    limit holds one set)."""
    z = bench.z
    n = z["idle"]
    got: dict = {}

    def on_event(c, ev):
        if ev.get("type") == "availability":
            got.setdefault(ev["online"], []).append(now())

    # cutelive
    srv = await bench.server().start()
    bench.track_built = await bench.probe_track()
    ops = await bench.operators(n=10)
    net = Net(bench.base)
    warm = await bench.connect_visitors(net, bench.tokens[:20], on_event)
    for c in warm:
        c.abort()
    await bench.pause(2)
    rss0 = srv.stat()["VmRSS"]
    t0 = now()
    vis = await bench.connect_visitors(net, bench.tokens[:n], on_event)
    connect_s = now() - t0
    await bench.pause(3)
    st = srv.stat()
    kb = (st["VmRSS"] - rss0) / n
    # baseline, beside it
    bport = free_port()
    bl = await bench.baseline(port=bport).start()
    await bench.pause(1)
    brss0 = bl.stat()["VmRSS"]
    g, _ = await _generator("idle_clients.py", "--port", str(bport), "--count", str(n))
    await bench.pause(3)
    bkb = (bl.stat()["VmRSS"] - brss0) / n
    # both idle: the same window
    await bench.metrics(reset=True)
    w, bw = Window(srv), Window(bl)
    await asyncio.sleep(z["idle_window"])
    win, bwin = w.close(), bw.close()
    # each one's "rest of the machine" is not the other server
    win["other_cpu_pct"] = max(0.0, win["other_cpu_pct"] - bwin["server_cpu_pct"])
    bwin["other_cpu_pct"] = max(0.0, bwin["other_cpu_pct"] - win["server_cpu_pct"])
    m = await bench.metrics()
    held = m["visitor_streams"]
    # broadcast: the last operator going away flips availability for every visitor
    for o in ops[1:]:
        await o.request({"type": "status", "status": "away"})
    got.clear()
    t_b = now()
    await ops[0].request({"type": "status", "status": "away"})
    await bench.wait_until(lambda: len(got.get(False, [])) >= n, 30)
    bcast = (max(got.get(False, [t_b])) - t_b) * 1000
    t_b = now()
    await ops[0].request({"type": "status", "status": "online"})
    await bench.wait_until(lambda: len(got.get(True, [])) >= n, 30)
    bcast_on = (max(got.get(True, [t_b])) - t_b) * 1000
    for o in ops[1:]:
        await o.request({"type": "status", "status": "online"})
    for c in vis + ops:
        c.abort()
    await net.close()
    await srv.stop()
    _say(g, "broadcast")
    bbcast = (await _storm_result(g)).get("broadcast_ms", float("nan"))
    _say(g, "end")
    await asyncio.get_running_loop().run_in_executor(None, g.wait)
    await bl.stop()
    bench.details["idle"] = dict(
        connect_s=round(connect_s, 1),
        rss0_kb=rss0,
        after=st,
        window=win,
        metrics=m,
        broadcast_ms=[bcast, bcast_on],
        received=len(got.get(True, [])),
        baseline=dict(kb=bkb, window=bwin, broadcast_ms=bbcast),
    )
    g, note = gen_note(win)
    lag = lag_text(m)
    sc = f"idle visitors ({n:,})"
    bench.row(sc, "visitors held", held, f"{n:,}", held >= n, None, None, g, lag, note)
    bench.row(
        sc,
        "KB per visitor",
        round(kb, 1),
        "≤ 20",
        kb <= 20,
        round(bkb, 1),
        round(kb / bkb, 2) if bkb > 0 else None,
        g,
        lag,
        note,
    )
    cpu = win["server_cpu_pct"]
    bench.row(
        sc,
        "idle CPU, % of a core",
        cpu,
        "≤ 10",
        cpu <= 10,
        bwin["server_cpu_pct"],
        round(cpu / max(bwin["server_cpu_pct"], 0.1), 2),
        g,
        lag,
        f"window {z['idle_window']} s, the same for both" + (f"; {note}" if note else ""),
    )
    bench.row(
        sc,
        "broadcast to all, ms",
        round(bcast, 0),
        None,
        None,
        round(bbcast, 0),
        round(bcast / max(bbcast, 1), 2),
        g,
        lag,
        "availability event; last receiver",
    )
    await drain_time_wait(bench.log)
    await s_halfopen(bench)


async def s_halfopen(bench: Harness) -> None:
    """Half-open clients: a generator process is frozen (SIGSTOP); time until dropped."""
    z = bench.z
    hb = z["hb_short"]
    ini = bench.work / "halfopen.ini"
    ini.write_text(bench.ini.read_text() + f"\n[realtime]\nheartbeat = {hb}s\n")
    res = {}
    for kind in ("cutelive", "baseline"):
        port = free_port()
        proc = bench.server(ini, port=port) if kind == "cutelive" else bench.baseline(hb, port)
        await proc.start()

        async def streams(kind=kind, port=port):
            if kind == "cutelive":
                return (await bench.metrics(port=port))["visitor_streams"]
            async with session("127.0.0.1") as s:
                async with s.get(f"http://127.0.0.1:{port}/status") as r:
                    return (await r.json())["sockets"]

        if kind == "baseline":
            # bench/flood.py speaks cutelive's path; the baseline counts any WebSocket
            res[kind] = await _halfopen_run(bench, proc, port, streams, "/ws")
        else:
            res[kind] = await _halfopen_run(bench, proc, port, streams, None)
        await proc.stop()
    bench.details["halfopen"] = res
    ours, theirs = res["cutelive"], res["baseline"]
    bench.row(
        f"idle visitors ({z['idle']:,})",
        f"half-open dropped after, s (hb {hb} s, {z['halfopen']} clients)",
        ours.get("dropped_s"),
        f"≤ {2 * hb}",
        (ours.get("dropped_s") or 1e9) <= 2 * hb,
        theirs.get("dropped_s"),
        None,
        None,
        None,
        ours.get("note", ""),
    )


async def _halfopen_run(bench: Harness, proc, port, streams, path) -> dict:
    z = bench.z
    cmd = [
        sys.executable,
        str(BENCH / "flood.py"),
        "--mode",
        "hold",
        "--port",
        str(port),
        "--tokens",
        str(bench.work / "tokens.json"),
        "--count",
        str(z["halfopen"]),
    ]
    env = dict(os.environ)
    if path:
        env["BENCH_WS_PATH"] = path
    g = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: os.sched_setaffinity(0, {GEN_CPU}),
    )
    line = await asyncio.get_running_loop().run_in_executor(None, g.stdout.readline)
    before = await streams()
    await asyncio.sleep(random.uniform(0, z["hb_short"]))
    g.send_signal(signal.SIGSTOP)
    t0 = now()
    ok = await bench.wait_until_async(lambda: streams(), lambda v: v == 0, 8 * z["hb_short"])
    dropped = now() - t0 if ok else None
    g.kill()
    g.wait()
    return {
        "ready": line.strip(),
        "held_before": before,
        "dropped_s": dropped and round(dropped, 2),
    }


# -- scenario: reconnect storm ------------------------------------------------------------


async def s_storm(bench: Harness) -> None:
    z = bench.z
    n = z["storm"]
    srv = await bench.server().start()
    ops = await bench.operators(n=10)
    gen = await _storm_generator(bench, n, baseline=False)
    m0 = await bench.metrics()
    # a burst of operator messages right before the signal: some arrive, some are replayed
    opsby = {cid: o for o in ops for cid in o.cursors}
    for i, cid in enumerate(list(opsby)[: z["storm_msgs"]]):
        opsby[cid].send_nowait(
            {
                "type": "message",
                "chat_id": cid,
                "client_id": f"x{i}",
                "text": "Still there? We are restarting the server.",
            }
        )
    await asyncio.sleep(0.2)
    for c in ops:
        c.resumed_at = None
    _say(gen, "down")
    t0 = now()
    rc, exit_s = await srv.stop()
    probe = ReadyProbe(bench.port, "/api/status")
    srv2 = await bench.server().start(timeout=60)
    up_s = now() - t0
    res = await _storm_result(gen)
    srv_cpu = srv2.stat().get("cpu_s", 0)
    ready_s = await asyncio.get_running_loop().run_in_executor(None, probe.seconds)
    rtimes = sorted((t if t is not None else now()) - t0 for t in res.get("resumed_at", []))
    last = rtimes[-1] if rtimes else None
    await bench.pause(3)
    m = await bench.metrics()
    resumed = sum(1 for t in res.get("resumed_at", []) if t is not None)
    streams = m["visitor_streams"]
    _say(gen, "exit")
    gen.wait()
    for c in ops:
        c.abort()
    await srv2.stop()
    await drain_time_wait(bench.log)
    # baseline: the same generator against a bare Tornado restart
    bl = await bench.baseline().start()
    bgen = await _storm_generator(bench, n, baseline=True)
    _say(bgen, "down")
    t1 = now()
    await bl.stop()
    bprobe = ReadyProbe(bench.port, "/status")
    bl2 = await bench.baseline().start(timeout=60)
    bres = await _storm_result(bgen)
    btimes = [(t if t is not None else now()) - t1 for t in bres.get("resumed_at", [])]
    blast = max(btimes, default=0.0)
    bready_s = await asyncio.get_running_loop().run_in_executor(None, bprobe.seconds)
    _say(bgen, "exit")
    bgen.wait()
    await bl2.stop()
    await drain_time_wait(bench.log)
    done = bool(res.get("all_resumed"))
    dups, gaps = res.get("dups", 0), res.get("gaps", 0)
    slices = res.get("cpu_slices", [])
    busy = sum(1 for x in slices if x >= 90) * 0.5
    bench.details["storm"] = dict(
        exit_rc=rc,
        exit_s=round(exit_s, 2),
        restart_ready_s=round(up_s, 2),
        new_process_ready_s=ready_s and round(ready_s, 2),
        baseline_new_process_ready_s=bready_s and round(bready_s, 2),
        all_resumed=done,
        resumed=resumed,
        dups=dups,
        gaps=gaps,
        streams_before=m0["visitor_streams"],
        streams_after=streams,
        metrics=m,
        gen_cpu_pct=res.get("cpu_pct"),
        gen_cpu_slices=slices,
        baseline_gen_cpu_pct=bres.get("cpu_pct"),
        baseline_gen_cpu_slices=bres.get("cpu_slices", []),
        server_cpu_s=srv_cpu,
        baseline_s=round(blast, 2),
        baseline_all_resumed=bres.get("all_resumed"),
    )
    g = f"{res.get('cpu_pct', 0):.0f}% (peak {max(slices, default=0):.0f}%)"
    note = (
        f"generator-bound: its core was ≥ 90 % busy for {busy:.1f} s of the storm"
        if busy >= 1
        else ""
    )
    note += ("; " if note else "") + f"server CPU {srv_cpu:.1f} s since restart"
    if rtimes:
        note += f"; resumed p50 {pct(rtimes, 0.5):.1f} s, p90 {pct(rtimes, 0.9):.1f} s"
    note += f"; baseline generator {bres.get('cpu_pct', 0):.0f}%"
    sc = f"reconnect storm ({n:,})"
    bench.row(
        sc,
        "SIGTERM → last visitor resumed, s",
        last and round(last, 2),
        "≤ 10",
        done and last is not None and last <= 10,
        round(blast, 2),
        round(last / max(blast, 0.01), 2) if last else None,
        g,
        lag_text(m),
        f"exit {exit_s:.1f} s (rc {rc}), the new process answered {fmt(ready_s)} s after it "
        f"started (baseline {fmt(bready_s)} s; asked from a process of its own); "
        "visitors from bench/storm.py (raw sockets, a process of its own); " + note,
    )
    bench.row(
        sc,
        "duplicates / gaps / streams after",
        f"{dups} / {gaps} / {streams:,}",
        f"0 / 0 / {n:,}",
        dups == 0 and streams == n,
        None,
        None,
        g,
        lag_text(m),
        f"{resumed:,} of {n:,} resumed",
    )


async def _storm_generator(bench: Harness, n: int, baseline: bool) -> subprocess.Popen:
    """bench/storm.py with ``n`` visitors connected and up to date (its ``READY``)."""
    args = ["--port", str(bench.port), "--count", str(n)]
    args += ["--baseline"] if baseline else ["--tokens", str(bench.work / "tokens.json")]
    g, line = await _generator("storm.py", *args)
    bench.log(f"  storm generator: {line.split()[1]} of {n:,} visitors up to date")
    return g


async def _generator(script: str, *args: str) -> tuple[subprocess.Popen, str]:
    """A generator program of bench/ in a process of its own on the generator's core, once it
    says ``READY``: the process, talked to by ``_say``, and its ``READY`` line."""
    g = subprocess.Popen(
        [sys.executable, str(BENCH / script), *args],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {GEN_CPU}),
    )
    line = await asyncio.get_running_loop().run_in_executor(None, g.stdout.readline)
    if not line.startswith("READY"):
        g.kill()
        raise RuntimeError(f"bench/{script} did not start: {line!r}")
    return g, line


def _say(g: subprocess.Popen, line: str) -> None:
    g.stdin.write(line + "\n")
    g.stdin.flush()


async def _storm_result(g: subprocess.Popen) -> dict:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, g.stdout.readline)
        if not line:
            return {}
        if line.startswith("RESULT"):
            return json.loads(line.split(" ", 1)[1])


# -- scenario: file limit -----------------------------------------------------------------


async def s_filelimit(bench: Harness) -> None:
    z = bench.z
    nofile = z["flood_nofile"]
    srv = await bench.server(nofile=nofile).start()
    measure: list = []
    on_event = dispatch(measure)
    ops = await bench.operators(on_event)
    net = Net(bench.base)
    k = z["fl_chats"]
    vis = await bench.connect_visitors(net, bench.tokens[:k], on_event, beacon=False)
    chat_ids = await open_chats(bench, vis, ops)
    opsby = {cid: o for o in ops for cid in o.cursors}
    senders = [(chat_ids[i], vis[i], opsby[chat_ids[i]]) for i in range(k)]
    m0 = await bench.metrics(reset=True)
    limit = m0["file_limit"]
    tok = bench.work / "flood_tokens.json"
    tok.write_text(json.dumps(bench.tokens[-200:]))
    half = z["flood"] // 2
    floods = []
    for j in range(2):
        cmd = [
            sys.executable,
            str(BENCH / "flood.py"),
            "--mode",
            "flood",
            "--port",
            str(bench.port),
            "--tokens",
            str(tok),
            "--count",
            str(half),
            "--offset",
            str(j),
            "--concurrency",
            "50",
        ]
        floods.append(
            subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stdin=subprocess.PIPE,
                text=True,
                preexec_fn=lambda: os.sched_setaffinity(0, {GEN_CPU}),
            )
        )
    w = Window(srv)
    until = asyncio.Event()
    load = asyncio.ensure_future(
        message_load(bench, senders, z["fl_rate"], 0, 0, 0.3, measure, until)
    )
    results = []
    for f in floods:
        while True:
            line = await asyncio.get_running_loop().run_in_executor(None, f.stdout.readline)
            if not line or line.startswith("RESULT"):
                break
        results.append(json.loads(line.split(" ", 1)[1]) if line else {})
    peak_fds = srv.stat().get("fds", 0)
    await bench.pause(2)
    until.set()
    r2 = await load
    gen_children = 0.0
    for f in floods:
        f.stdin.write("exit\n")
        f.stdin.flush()
    for f in floods:
        _, status, ru = os.wait4(f.pid, 0)
        gen_children += ru.ru_utime + ru.ru_stime
    win = w.close(extra_cpu=gen_children)
    await bench.pause(1)
    m = await bench.metrics()
    outcomes: dict = {}
    for r in results:
        for key, v in r.get("outcomes", {}).items():
            outcomes[key] = outcomes.get(key, 0) + v
    clean_keys = ("accepted", "http_503_server_full", "ws_close_1013", "closed_immediately")
    unclean = {key: v for key, v in outcomes.items() if key not in clean_keys}
    lat, errs, lost = r2["lat"], r2["errors"], r2["lost"]
    disconnects = sum(len(c.close_codes) for c in vis + ops)
    for c in vis + ops:
        c.abort()
    await net.close()
    rc, _ = await srv.stop()
    await drain_time_wait(bench.log)
    bench.details["filelimit"] = dict(
        file_limit=limit,
        peak_fds=peak_fds,
        outcomes=outcomes,
        floods=results,
        window=win,
        metrics=m,
        chats_after=dict(p99=pct(lat, 0.99), lost=lost, errors=len(errs)),
        disconnects=disconnects,
        exit_rc=rc,
    )
    g, note = gen_note(win, r2)
    sc = f"file limit ({z['flood']:,} attempts, limit {limit:,})"
    acc = outcomes.get("accepted", 0)
    refused = sum(outcomes.get(key, 0) for key in clean_keys[1:])
    unc = sum(unclean.values())
    bench.row(
        sc,
        "accepted / clean refusals / unclean",
        f"{acc:,} / {refused:,} / {unc:,}",
        "unclean 0",
        unc == 0 and refused > 0,
        None,
        None,
        g,
        lag_text(m),
        ", ".join(f"{k2} {v:,}" for k2, v in sorted(outcomes.items()))
        + (f"; {note}" if note else ""),
    )
    ok = disconnects == 0 and lost == 0 and not errs
    bench.row(
        sc,
        "chats in progress: disconnects / lost / errors",
        f"{disconnects} / {lost} / {len(errs)}",
        "0 / 0 / 0",
        ok,
        None,
        None,
        g,
        lag_text(m),
        f"{z['fl_chats']} chats at {z['fl_rate']} msg/s during the flood",
    )
