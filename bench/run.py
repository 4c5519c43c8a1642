#!/usr/bin/env python3
"""Cute Live Support benchmark: ``python3 bench/run.py [--quick | --smoke]``.

Starts cutelive as a separate process (pinned to CPU 0, with bench/bench.ini) and, in the same
run, the bare-Tornado baselines of bench/baseline.py; drives each scenario with simulated
visitors and operators from bench/clients.py (pinned to CPU 1); prints one table and writes
JSON to bench/results/. See bench/README.md for what each scenario measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import sys
import traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import infra  # noqa: E402
import scen_chats  # noqa: E402
import scen_cluster  # noqa: E402
import scen_connections  # noqa: E402
import scen_footprint  # noqa: E402
import scen_monitor  # noqa: E402
from clients import now  # noqa: E402
from harness import Harness  # noqa: E402
from infra import GEN_CPU, SERVER_CPU, children, cpu_model, fmt  # noqa: E402

#: Every scenario in the order of a run: its name (for ``--only``) and the function that runs it
#: on the run's ``harness.Harness`` (the scenarios by subject in ``scen_*.py``).
RUNS = {
    "idle": scen_connections.s_idle,
    "chats": scen_chats.s_chats,
    "longpoll": scen_chats.s_longpoll,
    "filelimit": scen_connections.s_filelimit,
    "pageviews": scen_monitor.s_pageviews,
    "fanout": scen_monitor.s_fanout,
    "storm": scen_connections.s_storm,
    "coldstart": scen_footprint.s_coldstart,
    "widget": scen_footprint.s_widget,
    "cluster_chats": scen_cluster.s_cluster_chats,
    "cluster_fanout": scen_cluster.s_cluster_fanout,
}
SCENARIOS = list(RUNS)
#: Run only when named (``--cluster``, or ``--only``): they need PostgreSQL and Redis.
CLUSTER = ["cluster_chats", "cluster_fanout"]


async def run(bench: Harness) -> int:
    """Setup, then every scenario asked for, in order; 1 when one of them failed."""
    try:
        return await _run(bench)
    finally:
        scen_cluster.stop_backends(bench)


async def _run(bench: Harness) -> int:
    await bench.setup(CLUSTER)
    for name in SCENARIOS:
        if bench.only and name not in bench.only:
            continue
        if not bench.only and name in CLUSTER:
            continue
        bench.log(f"scenario {name}")
        t0 = now()
        try:
            await RUNS[name](bench)
        except Exception:
            tb = traceback.format_exc()
            bench.errors.append(f"{name}: {tb}")
            bench.log(f"  FAILED: {tb}")
            bench.row(name, "error", "FAILED (see log)", None, False)
            await kill_strays()
        bench.details.setdefault("durations_s", {})[name] = round(now() - t0, 1)
    for s in bench.op_sessions:
        await s.close()
    return 1 if bench.errors else 0


async def kill_strays() -> None:
    for pid in children(os.getpid()):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.5)


def report(bench: Harness) -> str:
    """The table, its header (the run, the machine, bench.ini) and the notes."""
    label = {
        "full": "FULL",
        "quick": "QUICK (not the figures to quote)",
        "smoke": "SMOKE (tiny; no targets)",
    }[bench.mode]
    cols = [
        "scenario",
        "figure",
        "value",
        "target",
        "ok",
        "baseline",
        "ratio",
        "gen CPU",
        "lag p99/max ms",
    ]
    table = [cols]
    for r in bench.rows:
        ok = {True: "met", False: "MISSED", None: ""}[r["ok"]]
        table.append(
            [
                r["scenario"],
                r["figure"],
                fmt(r["value"]),
                r["target"] or "—",
                ok,
                fmt(r["baseline"]),
                fmt(r["ratio"], 2),
                r["gen_cpu"] or "—",
                r["lag"] or "—",
            ]
        )
    widths = [max(len(str(row[i])) for row in table) for i in range(len(cols))]
    lines = []
    for j, row in enumerate(table):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"  {r['scenario']} / {r['figure']}: {r['note']}" for r in bench.rows if r["note"]]
    head = [
        f"Cute Live Support benchmark — {label}",
        f"date {datetime.datetime.now().isoformat(timespec='seconds')}, "
        f"{platform.node()}, {os.cpu_count()} CPUs ({cpu_model()}), "
        f"Python {platform.python_version()}, server on CPU {SERVER_CPU}, "
        f"generators on CPU {GEN_CPU}, run took {now() - bench.started:.0f} s",
        f"load average at the start: {bench.load_at_start:.2f}"
        f"{' (quiet: under 1)' if bench.load_at_start < 1 else ' (not quiet: 1 or more)'}, "
        f"at the end: {os.getloadavg()[0]:.2f}",
        *_bare_beacons(bench),
        f"one run on a shared machine (other people's work may use the same "
        f"{os.cpu_count()} cores): a row's notes say noisy when the rest of the machine used "
        "more than 15 % of a core during its measurement",
        "bench/bench.ini:",
        *["    " + line for line in bench.ini.read_text().splitlines() if line.strip()],
        "",
    ]
    foot = [
        "",
        "ratio = ours ÷ baseline (same run, same generator); gen CPU = the "
        "generator's share of its core; lag = the server's event-loop lag.",
        "notes:",
        *notes,
    ]
    if bench.errors:
        foot += ["errors:", *bench.errors]
    return "\n".join(head + lines + foot)


def _bare_beacons(bench: Harness) -> list[str]:
    """The header's line naming the machine by bare Tornado's beacons/s in this run."""
    for r in bench.rows:
        if r["figure"] == "beacons/s" and r["baseline"]:
            return [
                f"bare Tornado made {fmt(r['baseline'])} beacons/s in this run (DESIGN §6's "
                "absolute targets assume a machine where it makes 5,700 or more; compare ratios)"
            ]
    return []


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="smaller sizes; labelled QUICK")
    g.add_argument("--smoke", action="store_true", help="tiny, under a minute, no targets (CI)")
    p.add_argument("--only", nargs="*", choices=SCENARIOS, help="run only these")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, database)")
    p.add_argument(
        "--cluster",
        action="store_true",
        help="one process on SQLite beside two on PostgreSQL + Redis ("
        + ", ".join(CLUSTER)
        + "; with --only, those named)",
    )
    a = p.parse_args()
    mode = "quick" if a.quick else "smoke" if a.smoke else "full"
    if a.cluster and not a.only:
        a.only = list(CLUSTER)
    infra.SMOKE = mode == "smoke"
    os.sched_setaffinity(0, {GEN_CPU})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the servers on the way out
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    b = Harness(mode, a.only)
    if a.only and set(a.only) <= set(CLUSTER):
        b.json_path = b.json_path.with_name(b.json_path.stem + "-cluster.json")
        label = f"{mode}-cluster"
    else:
        label = mode
    b.log(f"mode {mode}; work folder {b.work}")
    try:
        rc = asyncio.run(run(b))
    finally:
        for pid in children(os.getpid()):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        scen_cluster.stop_backends(b)
    text = report(b)
    print()
    print(text)
    out = dict(
        mode=mode,
        date=datetime.datetime.now().isoformat(timespec="seconds"),
        machine=dict(
            node=platform.node(),
            cpus=os.cpu_count(),
            model=cpu_model(),
            python=platform.python_version(),
        ),
        bench_ini=b.ini.read_text(),
        sizes=b.z,
        rows=b.rows,
        details=b.details,
        errors=b.errors,
        table=text,
    )
    b.json_path.write_text(json.dumps(out, indent=1, default=str))
    (b.results_dir / f"latest-{label}.txt").write_text(text + "\n")
    print(f"\nJSON: {b.json_path.relative_to(ROOT)}")
    if not a.keep:
        shutil.rmtree(b.work, ignore_errors=True)
    else:
        print(f"work folder kept: {b.work}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
