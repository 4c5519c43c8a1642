"""The cluster scenarios (``--cluster``): one process on SQLite beside two on PostgreSQL +
Redis in the same run, for the chats and the monitor fan-out, and the machinery they share
(the private PostgreSQL and Redis among it). Each function takes the run's
``harness.Harness`` as ``bench``."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time

import infra
from clients import MonitorWatch, Net, now
from harness import Harness, dispatch, gen_note, lag_text
from infra import ROOT, Postgres, Proc, Redis, drain_time_wait, fmt, free_port, pct, system_busy
from scen_chats import message_load, open_chats
from scen_monitor import COALESCE_MS, beacon_load, fan_latency, fan_mix, per_console

# -- scenario group: one process on SQLite beside two on PostgreSQL + Redis --------------


def start_backends(bench: Harness) -> float:
    """A private PostgreSQL and Redis (pinned to the server CPU), and the SQLite installation
    of setup (operators, their sessions, the visitor tokens) copied into PostgreSQL with
    ``cutelive.py migrate-db``; returns the seconds it took."""
    if bench.pg is not None:
        return 0.0
    t0 = now()
    bench.pg, bench.redis = Postgres(), Redis(bench.work)
    bench.pg.start()
    bench.redis.start()
    r = subprocess.run(
        [sys.executable, str(ROOT / "cutelive.py"), "migrate-db", "--to", bench.pg.url]
        + ["-c", str(bench.ini), "--data-dir", str(bench.data_dir)],
        capture_output=True,
        text=True,
        cwd=bench.work,
    )
    if r.returncode != 0:
        raise RuntimeError("migrate-db: " + r.stderr + r.stdout)
    bench.cluster_ini = bench.work / "cluster.ini"
    bench.cluster_ini.write_text(
        bench.ini.read_text()
        + f"\n[database]\nurl = {bench.pg.url}\n\n[cluster]\nredis_url = {bench.redis.url}\n"
    )
    return now() - t0


def stop_backends(bench: Harness) -> None:
    for b in (bench.redis, bench.pg):
        if b is not None:
            with contextlib.suppress(Exception):
                b.stop()
    bench.pg = bench.redis = None


async def cluster_servers(bench: Harness, kind: str) -> tuple[Proc, Proc]:
    """``one``: one process on SQLite (a and b are the same); ``two``: processes a (the
    visitors') and b (the consoles') on PostgreSQL and Redis, same ini, own data folders."""
    if kind == "one":
        a = await bench.server().start()
        return a, a
    port_b = free_port()
    a = bench.server(bench.cluster_ini, port=bench.port, data_dir=bench.work / "a", log="a.log")
    b = bench.server(bench.cluster_ini, port=port_b, data_dir=bench.work / "b", log="b.log")
    await a.start(timeout=60)
    await b.start(timeout=60)
    return a, b


def server_cpu(bench: Harness, a: Proc, b: Proc, kind: str) -> dict:
    """CPU seconds so far of each part of the server side."""
    out = {"a": a.stat().get("cpu_s", 0.0)}
    if kind == "two":
        out["b"] = b.stat().get("cpu_s", 0.0)
        out["postgresql"] = bench.pg.cpu_s()
        out["redis"] = bench.redis.cpu_s()
    return out


async def settle(bench: Harness, a: Proc, b: Proc, kind: str, limit: float = 60) -> float:
    """Wait until the server side uses less than a quarter of a core (at most ``limit`` s;
    opening chats, or starting, leaves work behind for some seconds, on PostgreSQL + Redis
    most); returns the seconds waited."""
    t0 = now()
    while now() - t0 < (1 if infra.SMOKE else limit):
        q0, qw = server_cpu(bench, a, b, kind), now()
        await asyncio.sleep(2)
        q1 = server_cpu(bench, a, b, kind)
        if sum(q1[k] - q0[k] for k in q1) / (now() - qw) < 0.25:
            break
    return now() - t0


async def idle_rate(bench: Harness, a: Proc, b: Proc, kind: str, secs: float) -> dict:
    """CPU-seconds per second of each part of the server side over ``secs`` of no load."""
    i0, iw = server_cpu(bench, a, b, kind), now()
    await asyncio.sleep(secs)
    i1, iwall = server_cpu(bench, a, b, kind), now() - iw
    return {k: (i1[k] - i0[k]) / iwall for k in i1}


def cpu_per_1000(cpu: dict, idle: dict, wall: float, n: int) -> dict:
    """CPU-seconds of each part per 1,000 of ``n`` events over ``wall`` s, with and without
    the idle rate (``idle``, CPU-s per s) measured before."""
    k = n / 1000
    return dict(
        cpu_s={k2: round(v, 3) for k2, v in cpu.items()},
        cpu_s_per_1000={k2: v / k for k2, v in cpu.items()},
        idle_cpu_pct={k2: round(100 * v, 2) for k2, v in idle.items()},
        marginal_cpu_s_per_1000={k2: max(0.0, cpu[k2] - idle[k2] * wall) / k for k2 in cpu},
    )


#: A ramp step is sustained when every message arrives and the p99 stays under this.
RAMP_P99_MS = 100


async def cluster_chat_side(bench: Harness, kind: str) -> dict:
    """The open-chat load with every visitor on process a and every operator on b: an idle
    window (chats open, no messages), the load at the base rate (latency, CPU), then a ramp
    of short steps at ×1.5 the rate until a step is not sustained or the per-socket limits
    of the generator's operators would be passed."""
    z = bench.z
    n, hot, rate, secs = z["cl_chats"], z["cl_hot"], z["cl_rate"], z["cl_secs"]
    n_ops = z["cl_ops"]

    def share_of(r):
        return min(0.3, 1.5 / (r / hot))

    a, b = await cluster_servers(bench, kind)
    base_a, base_b = f"http://127.0.0.1:{a.port}", f"http://127.0.0.1:{b.port}"
    measure: list = []
    on_event = dispatch(measure)
    ops = await bench.operators(on_event, n=n_ops, base=base_b)
    net = Net(base_a)
    await bench.pause(1)
    rss0 = a.stat()["VmRSS"]
    t0 = now()
    vis = await bench.connect_visitors(net, bench.tokens[:n], on_event, beacon=False, base=base_a)
    chat_ids = await open_chats(bench, vis, ops)
    setup_s = now() - t0
    bench.log(f"  {kind}: {n:,} chats open in {setup_s:.1f} s")
    await bench.pause(2)
    rss1 = a.stat()["VmRSS"]
    clients = vis + ops

    def stream_counts():
        return dict(
            dups=sum(c.dups for c in clients),
            gaps=sum(c.gaps for c in clients),
            syncs=sum(c.syncs for c in clients),
            resets=sum(c.resets for c in clients),
            disconnects=sum(len(c.close_codes) for c in clients),
        )

    opening = stream_counts()
    # chat i was accepted by operator i mod len(ops) (open_chats)
    senders = [(chat_ids[i], vis[i], ops[i % len(ops)]) for i in range(hot)]
    not_followed = sum(1 for cid, _, o in senders if cid not in o.cursors)
    ports = sorted({a.port, b.port})

    settle_s = await settle(bench, a, b, kind)
    # idle: the open chats' own cost (heartbeats, presence), to tell it from the messages'
    idle = await idle_rate(bench, a, b, kind, z["cl_idle"])

    for port in ports:
        await bench.metrics(reset=True, port=port)
    c0, g0, s0, w0 = server_cpu(bench, a, b, kind), time.process_time(), system_busy(), now()
    r = await message_load(
        bench, senders, rate, secs, z["warmup"], share_of(rate), measure, drain=30
    )
    wall = now() - w0
    c1, gen = server_cpu(bench, a, b, kind), time.process_time() - g0
    cpu = {k: c1[k] - c0[k] for k in c1}
    other = system_busy() - s0 - gen - sum(cpu.values())
    m = {port: await bench.metrics(port=port) for port in ports}
    after_load = stream_counts()
    lat = {k2: pct(r["lat"], p) for k2, p in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))}
    out = dict(
        kind=kind,
        ports=dict(a=a.port, b=b.port),
        setup_s=round(setup_s, 1),
        settle_s=round(settle_s, 1),
        sent_total=r["total_sent"],
        sent=r["sent"],
        delivered=r["delivered"],
        lost=r["lost"],
        errors=r["errors"][:20],
        n_errors=len(r["errors"]),
        latency_ms=lat,
        by_sender_ms={
            role: {"p50": pct(xs, 0.5), "p99": pct(xs, 0.99), "n": len(xs)}
            for role, xs in r["lat_by_sender"].items()
        },
        ack_p99_ms=pct(r["ack"], 0.99),
        delivered_per_s=(r["delivered"] / r["delivered_span_s"]) if r["delivered_span_s"] else None,
        **cpu_per_1000(cpu, idle, wall, r["total_sent"]),
        wall_s=round(wall, 2),
        window=dict(
            wall_s=round(wall, 2),
            gen_cpu_pct=round(100 * gen / wall, 1),
            server_cpu_pct=round(100 * sum(cpu.values()) / wall, 1),
            other_cpu_pct=round(max(0.0, 100 * other / wall), 1),
        ),
        gen_lag=r["gen_lag"],
        streams_opening=opening,
        streams_load={k2: after_load[k2] - opening[k2] for k2 in opening},
        not_followed=not_followed,
        kb_per_visitor_with_chat_a=round((rss1 - rss0) / n, 1),
        rss_kb=dict(a=rss1, **({"b": b.stat().get("VmRSS")} if b is not a else {})),
        metrics={str(p): mm for p, mm in m.items()},
        lag=" · ".join(lag_text(m[p]) for p in ([a.port, b.port] if b is not a else [a.port])),
    )
    if kind == "two":
        out["rss_kb"]["postgresql"] = bench.pg.rss_kb()
        out["rss_kb"]["redis"] = bench.redis.rss_kb()
    # the ramp: short steps at ×1.5 until one is not sustained (everything delivered within
    # 10 s and p99 ≤ RAMP_P99_MS) or the operators' sockets would pass their command limit
    steps = []
    sustained = rate if r["lost"] == 0 and (lat["p99"] or 1e9) <= RAMP_P99_MS else None
    ceiling = False
    step_rate = rate
    while sustained is not None:
        step_rate = round(step_rate * 1.5)
        if (1 - share_of(step_rate)) * step_rate / len(ops) > 9:
            ceiling = "the operators' command limit"  # commands_per_socket: 100 per 10 s
            break
        if len(steps) >= z["cl_steps"]:
            ceiling = f"{len(steps)} steps"
            break
        await bench.pause(1)
        rs = await message_load(
            bench, senders, step_rate, z["cl_step"], 1, share_of(step_rate), measure, drain=10
        )
        p99 = pct(rs["lat"], 0.99)
        ok = rs["lost"] == 0 and not rs["errors"] and (p99 or 1e9) <= RAMP_P99_MS
        steps.append(dict(rate=step_rate, p50_ms=pct(rs["lat"], 0.5), p99_ms=p99, lost=rs["lost"]))
        steps[-1]["errors"] = len(rs["errors"])
        if not ok:
            break
        sustained = step_rate
    out["ramp"] = dict(steps=steps, sustained=sustained, ceiling=ceiling)
    out["streams_total"] = stream_counts()
    for c in clients:
        c.abort()
    await net.close()
    for p in {id(a): a, id(b): b}.values():
        out.setdefault("exit", []).append((await p.stop())[0])
    await drain_time_wait(bench.log)
    return out


async def cluster_sides(bench: Harness, name: str, side) -> tuple[dict, dict]:
    """The private PostgreSQL and Redis (started once per run), then ``side("one")`` and
    ``side("two")``; their figures go to ``details[name]``."""
    prep = await asyncio.get_running_loop().run_in_executor(None, start_backends, bench)
    if prep:
        bench.log(
            f"  PostgreSQL {bench.pg.version} on :{bench.pg.port}, Redis {bench.redis.version} "
            f"on :{bench.redis.port}, setup copied by migrate-db: {prep:.1f} s"
        )
    one = await side(bench, "one")
    two = await side(bench, "two")
    bench.details[name] = dict(
        one_process_sqlite=one,
        two_processes_postgresql_redis=two,
        postgresql=dict(
            version=bench.pg.version,
            settings="defaults (fsync on, synchronous_commit on), listen 127.0.0.1",
        ),
        redis=dict(version=bench.redis.version, settings="--save '' --appendonly no"),
    )
    return one, two


def cluster_row_writer(bench: Harness, sc: str, two: dict, one: dict):
    """(row, gen CPU, lag) of a cluster scenario's table: ``row(figure, v2, v1, ...)`` puts
    the two processes in the value column and the one process in the baseline column, with
    both sides' ``noisy`` / ``INVALID`` notes; gen CPU is two / one, lag a · b."""
    g = f"{two['window']['gen_cpu_pct']:.0f}% / {one['window']['gen_cpu_pct']:.0f}%"
    _, note2 = gen_note(two["window"], two)
    _, note1 = gen_note(one["window"], one)
    notes = "; ".join(x for x in (note2 and f"two: {note2}", note1 and f"one: {note1}") if x)
    lag = two["lag"]

    def row(figure, v2, v1, target=None, ok=None, note="", digits=2):
        r = round(v2 / v1, 2) if v2 and v1 else None
        bench.row(
            sc,
            figure,
            "—" if v2 is None else f"{v2:,.{digits}f}",
            target,
            ok,
            "—" if v1 is None else f"{v1:,.{digits}f}",
            r,
            g,
            lag,
            "; ".join(x for x in (note, notes) if x),
        )

    return row, g, lag


def cluster_cpu_rows(row, two: dict, one: dict, unit: str, quiet: str, idle_of: str) -> None:
    """CPU-seconds per 1,000 ``unit`` of the application processes, PostgreSQL, Redis and
    the whole server side, each with and without the idle rate measured before."""
    c2, c1 = two["cpu_s_per_1000"], one["cpu_s_per_1000"]
    m2, m1 = two["marginal_cpu_s_per_1000"], one["marginal_cpu_s_per_1000"]
    i2, i1 = two["idle_cpu_pct"], one["idle_cpu_pct"]
    row(
        f"app CPU-s per 1,000 {unit}",
        c2["a"] + c2["b"],
        c1["a"],
        note=f"two: a {c2['a']:.3f} + b {c2['b']:.3f}; {two['sent_total']:,} {unit} over "
        f"{two['wall_s']:.0f} s (one: {one['sent_total']:,} over {one['wall_s']:.0f} s), with "
        f"the server side quiet first ({quiet}: {two['settle_s']:.0f} s, one "
        f"{one['settle_s']:.0f} s), with "
        f"{idle_of} idle cost; without it (idle: two a {i2['a']:.1f}% + b "
        f"{i2['b']:.1f}% of a core, one {i1['a']:.1f}%): two {m2['a'] + m2['b']:.3f}, one "
        f"{m1['a']:.3f}",
        digits=3,
    )
    row(
        f"PostgreSQL CPU-s per 1,000 {unit}",
        c2["postgresql"],
        None,
        digits=3,
        note="the postmaster and all its processes (backends, writers, reaped children), "
        f"from /proc; idle {i2['postgresql']:.1f}% of a core; without it "
        f"{m2['postgresql']:.3f}",
    )
    row(
        f"Redis CPU-s per 1,000 {unit}",
        c2["redis"],
        None,
        digits=3,
        note=f"idle {i2['redis']:.1f}% of a core; without it {m2['redis']:.3f}",
    )
    row(
        f"server side CPU-s per 1,000 {unit}",
        sum(c2.values()),
        c1["a"],
        note="share of the server core during the load: two "
        f"{two['window']['server_cpu_pct']:.0f}%, one {one['window']['server_cpu_pct']:.0f}%;"
        f" without the idle cost two {sum(m2.values()):.3f}, one {m1['a']:.3f}",
        digits=3,
    )


async def s_cluster_chats(bench: Harness) -> None:
    z = bench.z
    n, hot, rate = z["cl_chats"], z["cl_hot"], z["cl_rate"]
    one, two = await cluster_sides(bench, "cluster_chats", cluster_chat_side)
    sc = f"cluster chats ({n:,}; {rate:,} msg/s over {hot})"
    row, g, lag = cluster_row_writer(bench, sc, two, one)

    for key in ("p50", "p99", "p999"):
        row(
            f"delivery {key.replace('p999', 'p99.9')}, ms (a ⇄ b)",
            two["latency_ms"][key],
            one["latency_ms"][key],
            note="value: two processes on PostgreSQL + Redis, visitors on a, operators on b "
            "(each message crosses both); baseline column: one process on SQLite, same run"
            if key == "p50"
            else "",
        )
    for role, label in (("visitor", "visitor → operator"), ("operator", "operator → visitor")):
        t2, t1 = two["by_sender_ms"].get(role, {}), one["by_sender_ms"].get(role, {})
        bench.row(
            sc,
            f"{label} p50 / p99, ms",
            f"{fmt(t2.get('p50'), 2)} / {fmt(t2.get('p99'), 2)}",
            None,
            None,
            f"{fmt(t1.get('p50'), 2)} / {fmt(t1.get('p99'), 2)}",
            None,
            g,
            lag,
            f"{t2.get('n', 0):,} messages measured",
        )

    def ramp_text(side):
        rp = side["ramp"]
        if rp["sustained"] is None:
            return "not sustained at the base rate"
        txt = f"{rp['sustained']:,}"
        return ("≥ " + txt) if rp["ceiling"] else txt

    def ramp_note(side):
        st = side["ramp"]["steps"]
        parts = [f"{x['rate']:,}/s p99 {fmt(x['p99_ms'], 1)} ms lost {x['lost']}" for x in st]
        if side["ramp"]["ceiling"]:
            parts.append(f"stopped: {side['ramp']['ceiling']} (the generator's ceiling)")
        return ", ".join(parts) or "no step"

    bench.row(
        sc,
        "messages/s sustained",
        ramp_text(two),
        None,
        None,
        ramp_text(one),
        None,
        g,
        lag,
        f"steps of {z['cl_step']} s at ×1.5 the rate while everything arrives with p99 ≤ "
        f"{RAMP_P99_MS} ms; two: {ramp_note(two)}; one: {ramp_note(one)}; at the base "
        f"rate {fmt(two['delivered_per_s'], 0)}/s delivered (one "
        f"{fmt(one['delivered_per_s'], 0)}/s)",
    )
    bad2 = two["lost"] + two["n_errors"]
    s2, s1 = two["streams_load"], one["streams_load"]
    bench.row(
        sc,
        "lost / errors",
        f"{two['lost']} / {two['n_errors']}",
        "0 / 0",
        bad2 == 0,
        f"{one['lost']} / {one['n_errors']}",
        None,
        g,
        lag,
        f"{two['sent']:,} messages measured; lost: not delivered 30 s after the last was due; "
        f"disconnects {two['streams_total']['disconnects']} (one: "
        f"{one['streams_total']['disconnects']}); chats whose operator had no cursor before "
        f"the load {two['not_followed']} (one: {one['not_followed']})",
    )
    bench.row(
        sc,
        "gaps / syncs / repeats ignored",
        f"{s2['gaps']:,} / {s2['syncs']:,} / {s2['dups']:,}",
        None,
        None,
        f"{s1['gaps']:,} / {s1['syncs']:,} / {s1['dups']:,}",
        None,
        g,
        lag,
        "during the load, over all streams: events whose seq skipped (the client drops it "
        "and asks sync, one at a time), the syncs, and replayed events it already had "
        f"(seq ≤ cursor, ignored); while opening the chats: two "
        f"{two['streams_opening']['gaps']} / {two['streams_opening']['syncs']} / "
        f"{two['streams_opening']['dups']}, one {one['streams_opening']['gaps']} / "
        f"{one['streams_opening']['syncs']} / {one['streams_opening']['dups']}",
    )
    cluster_cpu_rows(row, two, one, "messages", "after opening", f"the {n:,} open chats'")


# -- scenario: the monitor fan-out across processes ----------------------------------------


async def cluster_fanout_side(bench: Harness, kind: str) -> dict:
    """The monitor fan-out with every beacon going to process a and every console on b, so
    each change crosses processes: the consoles connect, the server side settles, an idle
    window (the consoles' own cost), then the fan-out's beacon load (``beacon_load``):
    latency until every console has the row, lost pairs, and the CPU of each part from the
    first beacon until every console had every change (at most 10 s after the last)."""
    z = bench.z
    nc, nv, secs, rate = z["fan_consoles"], z["clf_visitors"], z["fan_secs"], z["clf_rate"]
    a, b = await cluster_servers(bench, kind)
    base_b = f"http://127.0.0.1:{b.port}"
    watch = MonitorWatch(nv)
    ops = await bench.operators(watch.on_event, n=nc, base=base_b)
    await bench.pause(1)
    settle_s = await settle(bench, a, b, kind)
    idle = await idle_rate(bench, a, b, kind, z["cl_idle"])
    ports = sorted({a.port, b.port})
    for port in ports:
        await bench.metrics(reset=True, port=port)

    def parts():
        return server_cpu(bench, a, b, kind)

    c0, w0 = parts(), now()
    # Visitors of their own, after the cluster chats' (whose chats stay open in both
    # databases), so the figures are the same whether or not the chats ran first.
    r = await beacon_load(
        bench, a, "/api/visitor/track", watch, nc, parts=parts, rate=rate, first=z["cl_chats"]
    )
    wall = now() - w0
    c1 = parts()
    cpu = {k: c1[k] - c0[k] for k in c1}
    m = {port: await bench.metrics(port=port) for port in ports}
    async with bench.op_sessions[0].get(base_b + "/api/console/visitors") as resp:
        listed = len((await resp.json(content_type=None))["visitors"])
    drops = sum(len(c.close_codes) for c in ops)
    for c in ops:
        c.abort()
    exits = [(await p.stop())[0] for p in {id(a): a, id(b): b}.values()]
    await drain_time_wait(bench.log)
    lat = fan_latency(r.pop("lat"))
    bench.log(
        f"  {kind}: {r['sent']:,} beacons, p99 {fmt(lat['p99'])} ms, lost {r['lost']}, "
        f"errors {r['errors']}"
    )
    return dict(
        r,
        kind=kind,
        ports=dict(a=a.port, b=b.port),
        settle_s=round(settle_s, 1),
        sent_total=r["sent"],
        latency_ms=lat,
        per_console=per_console(watch, nc, secs),
        console_disconnects=drops,
        listed=listed,
        **cpu_per_1000(cpu, idle, wall, r["sent"]),
        wall_s=round(wall, 2),
        metrics={str(p): mm for p, mm in m.items()},
        lag=" · ".join(lag_text(m[p]) for p in ([a.port, b.port] if b is not a else [a.port])),
        exit=exits,
    )


async def s_cluster_fanout(bench: Harness) -> None:
    z = bench.z
    nc, nv, rate = z["fan_consoles"], z["clf_visitors"], z["clf_rate"]
    one, two = await cluster_sides(bench, "cluster_fanout", cluster_fanout_side)
    sc = f"cluster fan-out ({nc} consoles; {rate} visitor events/s)"
    row, g, lag = cluster_row_writer(bench, sc, two, one)
    l2, l1 = two["latency_ms"], one["latency_ms"]
    measured, mix = fan_mix(two, nc, nv)
    row(
        "change on every console p50, ms (a → b)",
        l2["p50"],
        l1["p50"],
        note="value: two processes on PostgreSQL + Redis, every beacon to a, every console "
        "on b (each change crosses Redis); baseline column: one process on SQLite, same "
        f"run; {measured}; {mix}",
        digits=1,
    )
    row(
        "change on every console p99, ms (a → b)",
        l2["p99"],
        l1["p99"],
        note="from the beacon's due time until the console has the row; each process "
        f"coalesces visitors_changed over {COALESCE_MS} ms (PROTOCOL §6); max "
        f"{fmt(l2['max'], 0)} ms (one {fmt(l1['max'], 0)} ms)",
        digits=1,
    )
    e2, e1 = two["per_console"], one["per_console"]
    row(
        "visitors_changed per console per s",
        e2["mean"],
        e1["mean"],
        note=f"rows per event: two {e2['rows_per_event']:.1f}, one {e1['rows_per_event']:.1f}"
        f"; gap p50 two {fmt(e2['gap_p50_ms'], 0)} ms, one {fmt(e1['gap_p50_ms'], 0)} ms",
        digits=1,
    )
    bad = two["lost"] + two["errors"] + two["console_disconnects"]
    bench.row(
        sc,
        "lost / beacon errors / console drops",
        f"{two['lost']} / {two['errors']} / {two['console_disconnects']}",
        "0 / 0 / 0",
        bad == 0,
        f"{one['lost']} / {one['errors']} / {one['console_disconnects']}",
        None,
        g,
        lag,
        "lost = (console, visitor) pairs where the console does not list the visitor at its "
        f"last page {two['converged_s']:.1f} s after the last beacon was due (one "
        f"{one['converged_s']:.1f} s); GET /api/console/visitors on b lists "
        f"{two['listed']:,} of {nv:,} (one {one['listed']:,}); statuses two "
        + ", ".join(f"{s} {v:,}" for s, v in sorted(two["statuses"].items()))
        + ", one "
        + ", ".join(f"{s} {v:,}" for s, v in sorted(one["statuses"].items())),
    )
    cluster_cpu_rows(
        row, two, one, "visitor events", "after the consoles connected", f"the {nc} consoles'"
    )
