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
from clients import now  # noqa: E402
from harness import BenchBase  # noqa: E402
from infra import GEN_CPU, SERVER_CPU, children, cpu_model, fmt  # noqa: E402
from scen_chats import ChatScenarios  # noqa: E402
from scen_cluster import ClusterScenarios  # noqa: E402
from scen_connections import ConnectionScenarios  # noqa: E402
from scen_footprint import FootprintScenarios  # noqa: E402
from scen_monitor import MonitorScenarios  # noqa: E402


class Bench(
    ConnectionScenarios,
    ChatScenarios,
    MonitorScenarios,
    ClusterScenarios,
    FootprintScenarios,
    BenchBase,
):
    """The run: every scenario (one mixin per subject, ``scen_*.py``) on the core of
    ``harness.BenchBase``; the order, the report."""

    SCENARIOS = [
        "idle",
        "chats",
        "longpoll",
        "filelimit",
        "pageviews",
        "fanout",
        "storm",
        "coldstart",
        "widget",
        "cluster_chats",
        "cluster_fanout",
    ]
    #: Run only when named (``--cluster``, or ``--only``): they need PostgreSQL and Redis.
    CLUSTER = ["cluster_chats", "cluster_fanout"]

    async def run(self) -> int:
        try:
            return await self._run()
        finally:
            self.stop_backends()

    async def _run(self) -> int:
        self.track_built = False
        await self.setup()
        for name in self.SCENARIOS:
            if self.only and name not in self.only:
                continue
            if not self.only and name in self.CLUSTER:
                continue
            self.log(f"scenario {name}")
            t0 = now()
            try:
                await getattr(self, f"s_{name}")()
            except Exception:
                tb = traceback.format_exc()
                self.errors.append(f"{name}: {tb}")
                self.log(f"  FAILED: {tb}")
                self.row(name, "error", "FAILED (see log)", None, False)
                await self.kill_strays()
            self.details.setdefault("durations_s", {})[name] = round(now() - t0, 1)
        for s in self.op_sessions:
            await s.close()
        return 1 if self.errors else 0

    async def kill_strays(self) -> None:
        for pid in children(os.getpid()):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.5)

    def report(self) -> str:
        label = {
            "full": "FULL",
            "quick": "QUICK (not the figures to quote)",
            "smoke": "SMOKE (tiny; no targets)",
        }[self.mode]
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
        for r in self.rows:
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
        notes = [f"  {r['scenario']} / {r['figure']}: {r['note']}" for r in self.rows if r["note"]]
        head = [
            f"Cute Live Support benchmark — {label}",
            f"date {datetime.datetime.now().isoformat(timespec='seconds')}, "
            f"{platform.node()}, {os.cpu_count()} CPUs ({cpu_model()}), "
            f"Python {platform.python_version()}, server on CPU {SERVER_CPU}, "
            f"generators on CPU {GEN_CPU}, run took {now() - self.started:.0f} s",
            f"load average at the end: {os.getloadavg()[0]:.2f}",
            f"one run on a shared machine (other people's work may use the same "
            f"{os.cpu_count()} cores): a row's notes say noisy when the rest of the machine used "
            "more than 15 % of a core during its measurement",
            "bench/bench.ini:",
            *["    " + line for line in self.ini.read_text().splitlines() if line.strip()],
            "",
        ]
        foot = [
            "",
            "ratio = ours ÷ baseline (same run, same generator); gen CPU = the "
            "generator's share of its core; lag = the server's event-loop lag.",
            "notes:",
            *notes,
        ]
        if self.errors:
            foot += ["errors:", *self.errors]
        return "\n".join(head + lines + foot)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="smaller sizes; labelled QUICK")
    g.add_argument("--smoke", action="store_true", help="tiny, under a minute, no targets (CI)")
    p.add_argument("--only", nargs="*", choices=Bench.SCENARIOS, help="run only these")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, database)")
    p.add_argument(
        "--cluster",
        action="store_true",
        help="one process on SQLite beside two on PostgreSQL + Redis ("
        + ", ".join(Bench.CLUSTER)
        + "; with --only, those named)",
    )
    a = p.parse_args()
    mode = "quick" if a.quick else "smoke" if a.smoke else "full"
    if a.cluster and not a.only:
        a.only = list(Bench.CLUSTER)
    infra.SMOKE = mode == "smoke"
    os.sched_setaffinity(0, {GEN_CPU})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the servers on the way out
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    b = Bench(mode, a.only)
    if a.only and set(a.only) <= set(Bench.CLUSTER):
        b.json_path = b.json_path.with_name(b.json_path.stem + "-cluster.json")
        label = f"{mode}-cluster"
    else:
        label = mode
    b.log(f"mode {mode}; work folder {b.work}")
    try:
        rc = asyncio.run(b.run())
    finally:
        for pid in children(os.getpid()):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        b.stop_backends()
    text = b.report()
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
