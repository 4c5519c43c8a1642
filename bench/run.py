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
import gc
import glob
import gzip
import http.client
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import aiohttp  # noqa: E402
from clients import (  # noqa: E402
    IPS,
    UA,
    BeaconPool,
    MonitorWatch,
    Net,
    StreamClient,
    baseline_poll,
    fanout_beacon,
    gather_limited,
    new_token,
    now,
    session,
    track,
)

SERVER_CPU, GEN_CPU = 0, 1
PASSWORD = "bench horse battery 1"

#: Sizes per mode, side by side: (name, full, quick, smoke). Full sizes are the targets of
#: DESIGN.md §6 and issue 4.
_SIZE_TABLE = [
    ("idle", 15_000, 3_000, 100),
    ("idle_window", 30, 10, 2),
    ("halfopen", 200, 100, 10),
    ("hb_short", 3, 3, 1),
    ("ops", 100, 50, 5),
    ("chats", 5_000, 1_000, 40),
    ("hot", 200, 100, 10),
    ("rate", 1_000, 500, 50),
    ("chat_secs", 30, 10, 2),
    ("warmup", 2, 1, 0.5),
    ("polls", 2_000, 500, 30),
    ("poll_hot", 200, 50, 5),
    ("poll_rate", 200, 50, 10),
    ("poll_secs", 20, 8, 2),
    ("storm", 10_000, 2_000, 100),
    ("storm_msgs", 500, 200, 10),
    ("flood", 20_500, 4_600, 1_200),
    ("flood_nofile", None, 4_096, 1_024),
    ("fl_chats", 20, 20, 5),
    ("fl_rate", 50, 50, 10),
    ("pv_tokens", 2_000, 1_000, 50),
    ("pv_secs", 20, 8, 2),
    ("wrk_conns", 32, 32, 4),
    ("fan_consoles", 20, 20, 3),
    ("fan_rate", 500, 500, 50),
    ("fan_visitors", 5_000, 2_000, 50),
    ("fan_secs", 20, 8, 2),
    ("cold_runs", 3, 2, 1),
    ("cl_ops", 40, 20, 5),
    ("cl_chats", 2_000, 300, 20),
    ("cl_hot", 80, 40, 10),
    ("cl_rate", 60, 50, 20),
    ("cl_secs", 30, 8, 2),
    ("cl_idle", 10, 3, 1),
    ("cl_step", 6, 3, 1),
    ("cl_steps", 8, 2, 1),
    ("clf_rate", 250, 250, 50),
    ("clf_visitors", 2_500, 1_000, 50),
]
SIZES = {
    mode: {row[0]: row[i] for row in _SIZE_TABLE}
    for i, mode in enumerate(("full", "quick", "smoke"), start=1)
}


# -- small helpers ----------------------------------------------------------------------------


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def fmt(v, digits=1) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid: int) -> dict:
    """RSS (KB), peak RSS, CPU seconds and open files of a process, from /proc."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        out["cpu_s"] = (int(fields[11]) + int(fields[12])) / tick
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, IndexError, ValueError):
        pass
    return out


def children(pid: int) -> list[int]:
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return kids


def system_busy() -> float:
    """Busy CPU seconds of the whole machine so far (to estimate other people's load)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


#: Ports of the servers bench/ started: TIME_WAIT is counted only for these (others' tests
#: on the same machine leave their own).
PORTS: set[int] = set()
SMOKE = False


def time_wait_count() -> int:
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(path) as f:
            next(f)
            for line in f:
                p = line.split()
                if p[3] == "06" and (
                    int(p[1].rsplit(":", 1)[1], 16) in PORTS
                    or int(p[2].rsplit(":", 1)[1], 16) in PORTS
                ):
                    n += 1
    return n


async def drain_time_wait(log, limit: float = 75, threshold: int = 100) -> float:
    """Pause until TIME_WAIT sockets from the last scenario are (nearly) gone."""
    if SMOKE:
        return 0.0  # tiny runs leave few; the smoke run must stay under a minute
    t0 = now()
    n = time_wait_count()
    while n > threshold and now() - t0 < limit:
        await asyncio.sleep(1)
        n = time_wait_count()
    waited = now() - t0
    if waited > 1:
        log(f"  waited {waited:.0f} s for TIME_WAIT to drain ({n} left)")
    return waited


class Proc:
    """A server process (cutelive or the baseline) pinned to the server CPU."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        port: int,
        log_path: Path,
        ready_path: str,
        cwd: Path | None = None,
        nofile: int | None = None,
    ):
        self.name, self.cmd, self.port, self.log_path = name, cmd, port, log_path
        PORTS.add(port)
        self.ready_path, self.cwd, self.nofile = ready_path, cwd, nofile
        self.p: subprocess.Popen | None = None
        self.started = 0.0
        self.ready_s: float | None = None

    def _pre(self) -> None:
        os.sched_setaffinity(0, {SERVER_CPU})
        if self.nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    async def start(self, timeout: float = 30) -> Proc:
        log = open(self.log_path, "ab")
        self.started = now()
        self.p = subprocess.Popen(
            self.cmd,
            stdout=log,
            stderr=log,
            cwd=self.cwd,
            preexec_fn=self._pre,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        while True:
            if await asyncio.get_running_loop().run_in_executor(None, self.ping):
                self.ready_s = now() - self.started
                return self
            if self.p.poll() is not None or now() - self.started > timeout:
                raise RuntimeError(f"{self.name} did not start; see {self.log_path}")
            await asyncio.sleep(0.005)

    def ping(self) -> bool:
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            c.request("GET", self.ready_path)
            ok = c.getresponse().status == 200
            c.close()
            return ok
        except OSError:
            return False

    @property
    def pid(self) -> int:
        return self.p.pid

    def stat(self) -> dict:
        return proc_stat(self.p.pid)

    async def stop(self, sig=signal.SIGTERM, timeout: float = 20) -> tuple[int | None, float]:
        if self.p is None or self.p.poll() is not None:
            return (self.p.returncode if self.p else None), 0.0
        t0 = now()
        self.p.send_signal(sig)
        while self.p.poll() is None and now() - t0 < timeout:
            await asyncio.sleep(0.005)
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        return self.p.returncode, now() - t0


def _pin_server() -> None:
    os.sched_setaffinity(0, {SERVER_CPU})


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: apt-get install postgresql")
    return found[-1]


class Postgres:
    """A private PostgreSQL cluster on loopback for the cluster scenarios, pinned to the server
    CPU (it is the server side). PostgreSQL refuses to run as root: as root, its folder belongs
    to the user ``postgres`` and initdb and pg_ctl run as that user (``runuser``). Its settings
    are the defaults (fsync and synchronous_commit on: a message is acknowledged after its
    commit is on disk), listening on 127.0.0.1 only."""

    def __init__(self) -> None:
        # Outside the work folder: mkdtemp makes that 0700 root's, and postgres must enter it.
        self.dir = Path(tempfile.mkdtemp(prefix="cutelive-bench-pg-"))
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            self.run_as = ["runuser", "-u", "postgres", "--"]
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/cutelive"
        self.started = False
        self.version = ""

    def start(self) -> None:
        subprocess.run(
            self.run_as + [pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"],
            check=True,
            capture_output=True,
        )
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        subprocess.run(
            self.run_as
            + [pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w"]
            + ["-o", opts, "start"],
            check=True,
            capture_output=True,
            preexec_fn=_pin_server,  # the postmaster and every backend inherit it
        )
        self.started = True
        subprocess.run(
            [pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
            + ["cutelive"],
            check=True,
            capture_output=True,
        )
        self.version = (self.data / "PG_VERSION").read_text().strip()

    @property
    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def cpu_s(self) -> float:
        """CPU seconds of the postmaster and all its processes: its own, its live children's
        (the backends of the connections, the writers) and those of the children it has
        already reaped (cutime + cstime), all from /proc/PID/stat."""
        pm = self.pid
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        try:
            with open(f"/proc/{pm}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / tick
        except (OSError, ValueError):
            pass
        for kid in children(pm):
            total += proc_stat(kid).get("cpu_s", 0)
        return total

    def rss_kb(self) -> int:
        return sum(proc_stat(p).get("VmRSS", 0) for p in [self.pid] + children(self.pid))

    def stop(self) -> None:
        if self.started:
            subprocess.run(
                self.run_as + [pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                capture_output=True,
            )
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    """A private ``redis-server`` on loopback (no persistence), pinned to the server CPU."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.p: subprocess.Popen | None = None
        self.version = ""

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: apt-get install redis-server")
        self.version = subprocess.run(
            [binary, "--version"], capture_output=True, text=True
        ).stdout.split()[2]
        log = open(self.work / "redis.log", "ab")
        self.p = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", str(self.work)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            preexec_fn=_pin_server,
        )
        log.close()
        deadline = now() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if now() > deadline or self.p.poll() is not None:
                raise RuntimeError("redis-server did not start; see redis.log")
            time.sleep(0.02)

    def cpu_s(self) -> float:
        return proc_stat(self.p.pid).get("cpu_s", 0) if self.p else 0.0

    def rss_kb(self) -> int:
        return proc_stat(self.p.pid).get("VmRSS", 0) if self.p else 0

    def stop(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.p = None


class Bench:
    def __init__(self, mode: str, only: list[str] | None):
        self.mode = mode
        self.z = SIZES[mode]
        self.only = only
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.results_dir = BENCH / "results"
        self.results_dir.mkdir(exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="cutelive-bench-"))
        self.json_path = self.results_dir / f"{stamp}-{mode}.json"
        self.data_dir = self.work / "data"
        self.ini = BENCH / "bench.ini"
        self.port = free_port()
        self.rows: list[dict] = []
        self.details: dict = {}
        self.tokens: list[str] = []
        self.pg: Postgres | None = None
        self.redis: Redis | None = None
        self.cluster_ini = self.ini
        self.op_sessions: list[aiohttp.ClientSession] = []
        self.errors: list[str] = []
        self.started = now()

    async def pause(self, seconds: float) -> None:
        """Settle time between steps; short in smoke runs, which must finish within a minute."""
        await asyncio.sleep(min(seconds, 0.3) if SMOKE else seconds)

    def log(self, msg: str) -> None:
        print(f"[{now() - self.started:6.1f}s] {msg}", flush=True)

    # -- processes ----------------------------------------------------------------------------

    def server(
        self,
        ini: Path | None = None,
        nofile: int | None = None,
        port=None,
        data_dir: Path | None = None,
        log: str = "server.log",
    ) -> Proc:
        cmd = [sys.executable, str(ROOT / "cutelive.py"), "serve", "-c", str(ini or self.ini)]
        cmd += ["--data-dir", str(data_dir or self.data_dir), "--port", str(port or self.port)]
        return Proc(
            "cutelive",
            cmd,
            port or self.port,
            self.work / log,
            "/api/status",
            cwd=self.work,
            nofile=nofile,
        )

    def baseline(self, heartbeat: float = 25, port=None) -> Proc:
        db = self.work / "baseline.db"
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(str(db) + suffix)
        cmd = [sys.executable, str(BENCH / "baseline.py"), "--port", str(port or self.port)]
        cmd += ["--db", str(db), "--heartbeat", str(heartbeat)]
        return Proc("baseline", cmd, port or self.port, self.work / "baseline.log", "/status")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def metrics(self, reset: bool = False, port=None) -> dict:
        url = f"http://127.0.0.1:{port or self.port}/api/metrics" + ("?reset=1" if reset else "")
        async with session("127.0.0.1") as s, s.get(url) as r:
            return await r.json(content_type=None)

    # -- rows ---------------------------------------------------------------------------------

    def row(
        self,
        scenario,
        figure,
        value,
        target=None,
        ok=None,
        baseline=None,
        ratio=None,
        gen=None,
        lag=None,
        note="",
        unit="",
    ):
        if self.mode == "smoke":
            target, ok = "(smoke)", None
        r = dict(
            scenario=scenario,
            figure=figure,
            value=value,
            unit=unit,
            target=target,
            ok=ok,
            baseline=baseline,
            ratio=ratio,
            gen_cpu=gen,
            lag=lag,
            note=note,
        )
        self.rows.append(r)
        return r

    # -- operators ----------------------------------------------------------------------------

    async def login(self, i: int, username: str) -> aiohttp.ClientSession:
        s = session(IPS[i % len(IPS)], cookies=True)
        async with s.get(self.base + "/api/console/session") as r:
            xsrf = (await r.json())["xsrf"]
        body = {"username": username, "password": PASSWORD}
        async with s.post(
            self.base + "/api/console/login", json=body, headers={"X-XSRFToken": xsrf}
        ) as r:
            if r.status != 200:
                raise RuntimeError(f"login {username}: {r.status} {await r.text()}")
        s.xsrf = xsrf
        return s

    async def operators(
        self, on_event=None, n: int | None = None, base: str | None = None
    ) -> list[StreamClient]:
        """Console streams of the first ``n`` operators (all by default), one socket each."""
        ops = [
            StreamClient(s, base or self.base, "operator", on_event=on_event).start()
            for s in self.op_sessions[:n]
        ]
        await asyncio.gather(*(asyncio.wait_for(o.ready, 30) for o in ops))
        return ops

    # -- setup --------------------------------------------------------------------------------

    async def setup(self) -> None:
        """Operators (the admin by the CLI, the rest over the API) and a pool of visitor tokens."""
        z = self.z
        r = subprocess.run(
            [
                sys.executable,
                str(ROOT / "cutelive.py"),
                "create-operator",
                "op1",
                "--admin",
                "--password-stdin",
                "-c",
                str(self.ini),
                "--data-dir",
                str(self.data_dir),
            ],
            input=PASSWORD + "\n",
            capture_output=True,
            text=True,
            cwd=self.work,
        )
        if r.returncode != 0:
            raise RuntimeError("create-operator: " + r.stderr)
        srv = await self.server().start()
        try:
            admin = await self.login(0, "op1")

            async def create(i):
                i += 2
                body = {"username": f"op{i}", "display_name": f"Operator {i}", "password": PASSWORD}
                async with admin.post(
                    self.base + "/api/console/operators",
                    json=body,
                    headers={"X-XSRFToken": admin.xsrf},
                ) as resp:
                    if resp.status != 201:
                        raise RuntimeError(f"create op{i}: {await resp.text()}")
                return await self.login(i - 1, f"op{i}")

            cluster_only = bool(self.only) and set(self.only) <= set(self.CLUSTER)
            n_ops = z["cl_ops"] if cluster_only else max(z["ops"], z["cl_ops"])
            self.op_sessions = [admin] + await gather_limited(n_ops - 1, create, 8)
            need = z["cl_chats"]
            if "cluster_fanout" in (self.only or self.SCENARIOS):
                need = max(need, z["clf_visitors"])
            if not cluster_only:
                need = max(
                    need,
                    z["idle"],
                    z["chats"] + z["polls"],
                    z["storm"],
                    z["pv_tokens"],
                    z["fan_visitors"],
                )
            net = Net(self.base)
            t0 = now()
            self.tokens = await gather_limited(need, lambda i: new_token(net.pick(i), self.base))
            await net.close()
            self.log(
                f"setup: {n_ops} operators, {need:,} visitor tokens; tokens in {now() - t0:.1f} s"
            )
            (self.work / "tokens.json").write_text(json.dumps(self.tokens))
        finally:
            await srv.stop()

    # -- measurement helpers ------------------------------------------------------------------

    class Window:
        """CPU of the server, this generator and the rest of the machine over a time window."""

        def __init__(self, srv: Proc | None, extra_pids=(), parts=None):
            """``parts``: instead of ``srv``, a function giving the CPU seconds so far of each
            process of the server side (a dict); the window then also has each one's share."""
            self.srv, self.extra, self.parts = srv, list(extra_pids), parts
            self.t0 = now()
            self.gen0 = time.process_time()
            self.srv0 = srv.stat().get("cpu_s", 0) if srv else 0
            self.parts0 = parts() if parts else {}
            self.sys0 = system_busy()

        def close(self, extra_cpu: float = 0.0) -> dict:
            wall = now() - self.t0
            gen = time.process_time() - self.gen0 + extra_cpu
            srv = (self.srv.stat().get("cpu_s", 0) - self.srv0) if self.srv else 0
            parts = {}
            if self.parts:
                p1 = self.parts()
                parts = {k: p1[k] - self.parts0[k] for k in p1}
                srv = sum(parts.values())
            other = system_busy() - self.sys0 - gen - srv
            out = {
                "wall_s": round(wall, 2),
                "gen_cpu_pct": round(100 * gen / wall, 1),
                "server_cpu_pct": round(100 * srv / wall, 1),
                "other_cpu_pct": round(max(0.0, 100 * other / wall), 1),
            }
            if parts:
                out["parts_cpu_pct"] = {k: round(100 * v / wall, 1) for k, v in parts.items()}
            return out

    def gen_note(self, w: dict, load: dict | None = None) -> tuple[str, str]:
        g = f"{w['gen_cpu_pct']:.0f}%"
        notes = []
        gl = (load or {}).get("gen_lag") or {}
        if gl.get("p99_ms") is not None and gl["p99_ms"] > 5:
            notes.append(f"generator lag p99 {gl['p99_ms']:.1f} ms, max {gl['max_ms']:.0f} ms")
        if w["gen_cpu_pct"] >= 90:
            notes.append("INVALID: generator saturated its core")
        if w.get("other_cpu_pct", 0) >= 15:
            notes.append(f"noisy: other load {w['other_cpu_pct']:.0f}% of a core")
        return g, "; ".join(notes)

    @staticmethod
    def lag(m: dict) -> str:
        lg = m.get("loop_lag", {})
        return f"{lg.get('p99_ms', 0):.0f}/{lg.get('max_ms', 0):.0f}"

    # -- scenario: idle visitors --------------------------------------------------------------

    async def connect_visitors(
        self, net, tokens, on_event=None, beacon=True, limit=200, base: str | None = None
    ):
        base = base or self.base

        async def one(i):
            if beacon and self.track_built:
                await track(net.pick(i), base, tokens[i], i)
            c = StreamClient(net.pick(i), base, "visitor", tokens[i], on_event).start()
            await asyncio.wait_for(c.ready, 60)
            return c

        return await gather_limited(len(tokens), one, limit)

    async def s_idle(self) -> None:
        z = self.z
        n = z["idle"]
        got: dict = {}

        def on_event(c, ev):
            if ev.get("type") == "availability":
                got.setdefault(ev["online"], []).append(now())

        # cutelive
        srv = await self.server().start()
        self.track_built = await self.probe_track()
        ops = await self.operators(n=10)
        net = Net(self.base)
        warm = await self.connect_visitors(net, self.tokens[:20], on_event)
        for c in warm:
            c.abort()
        await self.pause(2)
        rss0 = srv.stat()["VmRSS"]
        t0 = now()
        vis = await self.connect_visitors(net, self.tokens[:n], on_event)
        connect_s = now() - t0
        await self.pause(3)
        st = srv.stat()
        kb = (st["VmRSS"] - rss0) / n
        await self.metrics(reset=True)
        w = self.Window(srv)
        await asyncio.sleep(z["idle_window"])
        win = w.close()
        m = await self.metrics()
        held = m["visitor_streams"]
        # broadcast: the last operator going away flips availability for every visitor
        for o in ops[1:]:
            await o.request({"type": "status", "status": "away"})
        got.clear()
        t_b = now()
        await ops[0].request({"type": "status", "status": "away"})
        await self.wait_until(lambda: len(got.get(False, [])) >= n, 30)
        bcast = (max(got.get(False, [t_b])) - t_b) * 1000
        t_b = now()
        await ops[0].request({"type": "status", "status": "online"})
        await self.wait_until(lambda: len(got.get(True, [])) >= n, 30)
        bcast_on = (max(got.get(True, [t_b])) - t_b) * 1000
        for o in ops[1:]:
            await o.request({"type": "status", "status": "online"})
        for c in vis + ops:
            c.abort()
        await net.close()
        await srv.stop()
        self.details["idle"] = dict(
            connect_s=round(connect_s, 1),
            rss0_kb=rss0,
            after=st,
            window=win,
            metrics=m,
            broadcast_ms=[bcast, bcast_on],
            received=len(got.get(True, [])),
        )
        await drain_time_wait(self.log)
        # baseline
        bl = await self.baseline().start()
        bnet = Net(self.base)
        bgot: list = []

        def bon(c, ev):
            if ev.get("type") == "availability":
                bgot.append(now())

        async def bone(i):
            c = StreamClient(bnet.pick(i), self.base, baseline=True, on_event=bon).start()
            await asyncio.wait_for(c.ready, 60)
            return c

        await self.pause(1)
        brss0 = bl.stat()["VmRSS"]
        bvis = await gather_limited(n, bone, 200)
        await self.pause(3)
        bkb = (bl.stat()["VmRSS"] - brss0) / n
        bw = self.Window(bl)
        await asyncio.sleep(z["idle_window"])
        bwin = bw.close()
        t_b = now()
        async with bnet.pick(0).post(self.base + "/broadcast?on=0") as r:
            await r.read()
        await self.wait_until(lambda: len(bgot) >= n, 30)
        bbcast = (max(bgot or [t_b]) - t_b) * 1000
        for c in bvis:
            c.abort()
        await bnet.close()
        await bl.stop()
        self.details["idle"]["baseline"] = dict(kb=bkb, window=bwin, broadcast_ms=bbcast)
        g, note = self.gen_note(win)
        lag = self.lag(m)
        sc = f"idle visitors ({n:,})"
        self.row(sc, "visitors held", held, f"{n:,}", held >= n, None, None, g, lag, note)
        self.row(
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
        self.row(
            sc,
            "idle CPU, % of a core",
            cpu,
            "≤ 10",
            cpu <= 10,
            bwin["server_cpu_pct"],
            round(cpu / max(bwin["server_cpu_pct"], 0.1), 2),
            g,
            lag,
            f"window {z['idle_window']} s" + (f"; {note}" if note else ""),
        )
        self.row(
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
        await drain_time_wait(self.log)
        await self.s_halfopen()

    async def wait_until(self, pred, timeout: float, step: float = 0.01) -> bool:
        t0 = now()
        while not pred():
            if now() - t0 > timeout:
                return False
            await asyncio.sleep(step)
        return True

    async def probe_track(self) -> bool:
        async with (
            session("127.0.0.1") as s,
            s.post(self.base + "/api/visitor/track", data=b"{}") as r,
        ):
            return r.status != 404 or "no such path" not in await r.text()

    async def s_halfopen(self) -> None:
        """Half-open clients: a generator process is frozen (SIGSTOP); time until dropped."""
        z = self.z
        hb = z["hb_short"]
        ini = self.work / "halfopen.ini"
        ini.write_text(self.ini.read_text() + f"\n[realtime]\nheartbeat = {hb}s\n")
        res = {}
        for kind in ("cutelive", "baseline"):
            port = free_port()
            proc = self.server(ini, port=port) if kind == "cutelive" else self.baseline(hb, port)
            await proc.start()

            async def streams(kind=kind, port=port):
                if kind == "cutelive":
                    return (await self.metrics(port=port))["visitor_streams"]
                async with session("127.0.0.1") as s:
                    async with s.get(f"http://127.0.0.1:{port}/status") as r:
                        return (await r.json())["sockets"]

            if kind == "baseline":
                # bench/flood.py speaks cutelive's path; the baseline counts any WebSocket
                res[kind] = await self._halfopen_run(proc, port, streams, "/ws")
            else:
                res[kind] = await self._halfopen_run(proc, port, streams, None)
            await proc.stop()
        self.details["halfopen"] = res
        ours, theirs = res["cutelive"], res["baseline"]
        self.row(
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

    async def _halfopen_run(self, proc, port, streams, path) -> dict:
        z = self.z
        cmd = [
            sys.executable,
            str(BENCH / "flood.py"),
            "--mode",
            "hold",
            "--port",
            str(port),
            "--tokens",
            str(self.work / "tokens.json"),
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
        ok = await self.wait_until_async(lambda: streams(), lambda v: v == 0, 8 * z["hb_short"])
        dropped = now() - t0 if ok else None
        g.kill()
        g.wait()
        return {
            "ready": line.strip(),
            "held_before": before,
            "dropped_s": dropped and round(dropped, 2),
        }

    async def wait_until_async(self, fetch, pred, timeout: float, step: float = 0.1) -> bool:
        t0 = now()
        while now() - t0 < timeout:
            if pred(await fetch()):
                return True
            await asyncio.sleep(step)
        return False

    # -- scenario: open chats -----------------------------------------------------------------

    async def open_chats(self, vis, ops) -> list[int]:
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
        self, srv, net, vis, ops, chat_ids, hot, rate, secs, visitor_share, measure
    ):
        """The message load over the first ``hot`` chats, then this scenario's server and
        clients stopped; returns (load figures, CPU window, metrics before, metrics after)."""
        opsby = {cid: o for o in ops for cid in o.cursors}
        senders = [(chat_ids[i], vis[i], opsby[chat_ids[i]]) for i in range(hot)]
        m0 = await self.metrics(reset=True)
        w = self.Window(srv)
        r = await self.message_load(senders, rate, secs, self.z["warmup"], visitor_share, measure)
        win = w.close()
        m = await self.metrics()
        for c in vis + ops:
            c.abort()
        await net.close()
        await srv.stop()
        await drain_time_wait(self.log)
        return r, win, m0, m

    async def message_load(
        self, senders, rate, secs, warmup, visitor_share, measure, until=None, drain=10
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
        gc.collect()
        gc.freeze()
        gc.disable()
        gen_lag: list[float] = []

        async def ticker():
            while True:
                due_t = now() + 0.005
                await asyncio.sleep(0.005)
                gen_lag.append(max(0.0, now() - due_t) * 1000)

        tick = asyncio.ensure_future(ticker())
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
        tick.cancel()
        recorded = [d for d in due.values() if d[2]]
        await self.wait_until(lambda: all(d[3] for d in recorded), drain, 0.1)
        gc.enable()
        gc.unfreeze()
        sent = len(recorded)
        delivered = sum(1 for d in recorded if d[3])
        measure.remove(on_event)
        gl = {"p99_ms": pct(gen_lag, 0.99), "max_ms": max(gen_lag, default=None)}
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

    @staticmethod
    def dispatch(measure):
        def on_event(c, ev):
            for fn in list(measure):
                fn(c, ev)

        return on_event

    async def s_chats(self) -> None:
        z = self.z
        n, hot, rate, secs = z["chats"], z["hot"], z["rate"], z["chat_secs"]
        share = min(0.3, 1.5 / (rate / hot))
        measure: list = []
        on_event = self.dispatch(measure)
        srv = await self.server().start()
        ops = await self.operators(on_event)
        net = Net(self.base)
        t0 = now()
        vis = await self.connect_visitors(net, self.tokens[:n], on_event, beacon=False)
        chat_ids = await self.open_chats(vis, ops)
        setup_s = now() - t0
        self.log(f"  {n:,} chats open in {setup_s:.1f} s")
        await self.pause(2)
        r, win, _m0, m = await self.send_and_stop(
            srv, net, vis, ops, chat_ids, hot, rate, secs, share, measure
        )
        # baseline: the same clients, rooms instead of chats
        bl = await self.baseline().start()
        bnet = Net(self.base)
        bmeasure: list = []
        bon = self.dispatch(bmeasure)
        rooms_of = [[i for i in range(n) if i % len(ops) == j] for j in range(len(ops))]
        bops = [
            StreamClient(
                bnet.pick(j), self.base, baseline=True, rooms=rooms_of[j], on_event=bon
            ).start()
            for j in range(len(ops))
        ]

        async def bone(i):
            c = StreamClient(bnet.pick(i), self.base, baseline=True, rooms=[i], on_event=bon)
            c.start()
            await asyncio.wait_for(c.ready, 60)
            return c

        bvis = await gather_limited(n, bone, 200)
        await asyncio.gather(*(o.ready for o in bops))
        bsend = [(i, bvis[i], bops[i % len(ops)]) for i in range(hot)]
        bw = self.Window(bl)
        br = await self.message_load(bsend, rate, secs, z["warmup"], share, bmeasure)
        bwin = bw.close()
        for c in bvis + bops:
            c.abort()
        await bnet.close()
        await bl.stop()
        await drain_time_wait(self.log)
        res = {k: pct(r["lat"], p) for k, p in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))}
        bres = {k: pct(br["lat"], p) for k, p in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))}
        self.details["chats"] = dict(
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
        g, note = self.gen_note(win, r)
        lag = self.lag(m)
        sc = f"open chats ({n:,}; {rate:,} msg/s over {hot})"
        for key, target, lim in (("p50", "≤ 2", 2), ("p99", "≤ 10", 10), ("p999", None, None)):
            v, b = res[key], bres[key]
            self.row(
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
        self.row(
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

    # -- scenario group: one process on SQLite beside two on PostgreSQL + Redis --------------

    def start_backends(self) -> float:
        """A private PostgreSQL and Redis (pinned to the server CPU), and the SQLite installation
        of setup (operators, their sessions, the visitor tokens) copied into PostgreSQL with
        ``cutelive.py migrate-db``; returns the seconds it took."""
        if self.pg is not None:
            return 0.0
        t0 = now()
        self.pg, self.redis = Postgres(), Redis(self.work)
        self.pg.start()
        self.redis.start()
        r = subprocess.run(
            [sys.executable, str(ROOT / "cutelive.py"), "migrate-db", "--to", self.pg.url]
            + ["-c", str(self.ini), "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            cwd=self.work,
        )
        if r.returncode != 0:
            raise RuntimeError("migrate-db: " + r.stderr + r.stdout)
        self.cluster_ini = self.work / "cluster.ini"
        self.cluster_ini.write_text(
            self.ini.read_text()
            + f"\n[database]\nurl = {self.pg.url}\n\n[cluster]\nredis_url = {self.redis.url}\n"
        )
        return now() - t0

    def stop_backends(self) -> None:
        for b in (self.redis, self.pg):
            if b is not None:
                with contextlib.suppress(Exception):
                    b.stop()
        self.pg = self.redis = None

    async def cluster_servers(self, kind: str) -> tuple[Proc, Proc]:
        """``one``: one process on SQLite (a and b are the same); ``two``: processes a (the
        visitors') and b (the consoles') on PostgreSQL and Redis, same ini, own data folders."""
        if kind == "one":
            a = await self.server().start()
            return a, a
        port_b = free_port()
        a = self.server(self.cluster_ini, port=self.port, data_dir=self.work / "a", log="a.log")
        b = self.server(self.cluster_ini, port=port_b, data_dir=self.work / "b", log="b.log")
        await a.start(timeout=60)
        await b.start(timeout=60)
        return a, b

    def server_cpu(self, a: Proc, b: Proc, kind: str) -> dict:
        """CPU seconds so far of each part of the server side."""
        out = {"a": a.stat().get("cpu_s", 0.0)}
        if kind == "two":
            out["b"] = b.stat().get("cpu_s", 0.0)
            out["postgresql"] = self.pg.cpu_s()
            out["redis"] = self.redis.cpu_s()
        return out

    async def settle(self, a: Proc, b: Proc, kind: str, limit: float = 60) -> float:
        """Wait until the server side uses less than a quarter of a core (at most ``limit`` s;
        opening chats, or starting, leaves work behind for some seconds, on PostgreSQL + Redis
        most); returns the seconds waited."""
        t0 = now()
        while now() - t0 < (1 if SMOKE else limit):
            q0, qw = self.server_cpu(a, b, kind), now()
            await asyncio.sleep(2)
            q1 = self.server_cpu(a, b, kind)
            if sum(q1[k] - q0[k] for k in q1) / (now() - qw) < 0.25:
                break
        return now() - t0

    async def idle_rate(self, a: Proc, b: Proc, kind: str, secs: float) -> dict:
        """CPU-seconds per second of each part of the server side over ``secs`` of no load."""
        i0, iw = self.server_cpu(a, b, kind), now()
        await asyncio.sleep(secs)
        i1, iwall = self.server_cpu(a, b, kind), now() - iw
        return {k: (i1[k] - i0[k]) / iwall for k in i1}

    @staticmethod
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

    async def cluster_chat_side(self, kind: str) -> dict:
        """The open-chat load with every visitor on process a and every operator on b: an idle
        window (chats open, no messages), the load at the base rate (latency, CPU), then a ramp
        of short steps at ×1.5 the rate until a step is not sustained or the per-socket limits
        of the generator's operators would be passed."""
        z = self.z
        n, hot, rate, secs = z["cl_chats"], z["cl_hot"], z["cl_rate"], z["cl_secs"]
        n_ops = z["cl_ops"]

        def share_of(r):
            return min(0.3, 1.5 / (r / hot))

        a, b = await self.cluster_servers(kind)
        base_a, base_b = f"http://127.0.0.1:{a.port}", f"http://127.0.0.1:{b.port}"
        measure: list = []
        on_event = self.dispatch(measure)
        ops = await self.operators(on_event, n=n_ops, base=base_b)
        net = Net(base_a)
        await self.pause(1)
        rss0 = a.stat()["VmRSS"]
        t0 = now()
        vis = await self.connect_visitors(net, self.tokens[:n], on_event, beacon=False, base=base_a)
        chat_ids = await self.open_chats(vis, ops)
        setup_s = now() - t0
        self.log(f"  {kind}: {n:,} chats open in {setup_s:.1f} s")
        await self.pause(2)
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

        settle_s = await self.settle(a, b, kind)
        # idle: the open chats' own cost (heartbeats, presence), to tell it from the messages'
        idle_rate = await self.idle_rate(a, b, kind, z["cl_idle"])

        for port in ports:
            await self.metrics(reset=True, port=port)
        c0, g0, s0, w0 = self.server_cpu(a, b, kind), time.process_time(), system_busy(), now()
        r = await self.message_load(
            senders, rate, secs, z["warmup"], share_of(rate), measure, drain=30
        )
        wall = now() - w0
        c1, gen = self.server_cpu(a, b, kind), time.process_time() - g0
        cpu = {k: c1[k] - c0[k] for k in c1}
        other = system_busy() - s0 - gen - sum(cpu.values())
        m = {port: await self.metrics(port=port) for port in ports}
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
            delivered_per_s=(r["delivered"] / r["delivered_span_s"])
            if r["delivered_span_s"]
            else None,
            **self.cpu_per_1000(cpu, idle_rate, wall, r["total_sent"]),
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
            lag=" · ".join(self.lag(m[p]) for p in ([a.port, b.port] if b is not a else [a.port])),
        )
        if kind == "two":
            out["rss_kb"]["postgresql"] = self.pg.rss_kb()
            out["rss_kb"]["redis"] = self.redis.rss_kb()
        # the ramp: short steps at ×1.5 until one is not sustained (everything delivered within
        # 10 s and p99 ≤ RAMP_P99_MS) or the operators' sockets would pass their command limit
        steps = []
        sustained = rate if r["lost"] == 0 and (lat["p99"] or 1e9) <= self.RAMP_P99_MS else None
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
            await self.pause(1)
            rs = await self.message_load(
                senders, step_rate, z["cl_step"], 1, share_of(step_rate), measure, drain=10
            )
            p99 = pct(rs["lat"], 0.99)
            ok = rs["lost"] == 0 and not rs["errors"] and (p99 or 1e9) <= self.RAMP_P99_MS
            steps.append(
                dict(rate=step_rate, p50_ms=pct(rs["lat"], 0.5), p99_ms=p99, lost=rs["lost"])
            )
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
        await drain_time_wait(self.log)
        return out

    async def cluster_sides(self, name: str, side) -> tuple[dict, dict]:
        """The private PostgreSQL and Redis (started once per run), then ``side("one")`` and
        ``side("two")``; their figures go to ``details[name]``."""
        prep = await asyncio.get_running_loop().run_in_executor(None, self.start_backends)
        if prep:
            self.log(
                f"  PostgreSQL {self.pg.version} on :{self.pg.port}, Redis {self.redis.version} "
                f"on :{self.redis.port}, setup copied by migrate-db: {prep:.1f} s"
            )
        one = await side("one")
        two = await side("two")
        self.details[name] = dict(
            one_process_sqlite=one,
            two_processes_postgresql_redis=two,
            postgresql=dict(
                version=self.pg.version,
                settings="defaults (fsync on, synchronous_commit on), listen 127.0.0.1",
            ),
            redis=dict(version=self.redis.version, settings="--save '' --appendonly no"),
        )
        return one, two

    def cluster_row_writer(self, sc: str, two: dict, one: dict):
        """(row, gen CPU, lag) of a cluster scenario's table: ``row(figure, v2, v1, ...)`` puts
        the two processes in the value column and the one process in the baseline column, with
        both sides' ``noisy`` / ``INVALID`` notes; gen CPU is two / one, lag a · b."""
        g = f"{two['window']['gen_cpu_pct']:.0f}% / {one['window']['gen_cpu_pct']:.0f}%"
        _, note2 = self.gen_note(two["window"], two)
        _, note1 = self.gen_note(one["window"], one)
        notes = "; ".join(x for x in (note2 and f"two: {note2}", note1 and f"one: {note1}") if x)
        lag = two["lag"]

        def row(figure, v2, v1, target=None, ok=None, note="", digits=2):
            r = round(v2 / v1, 2) if v2 and v1 else None
            self.row(
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

    @staticmethod
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

    async def s_cluster_chats(self) -> None:
        z = self.z
        n, hot, rate = z["cl_chats"], z["cl_hot"], z["cl_rate"]
        one, two = await self.cluster_sides("cluster_chats", self.cluster_chat_side)
        sc = f"cluster chats ({n:,}; {rate:,} msg/s over {hot})"
        row, g, lag = self.cluster_row_writer(sc, two, one)

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
            self.row(
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

        self.row(
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
            f"{self.RAMP_P99_MS} ms; two: {ramp_note(two)}; one: {ramp_note(one)}; at the base "
            f"rate {fmt(two['delivered_per_s'], 0)}/s delivered (one "
            f"{fmt(one['delivered_per_s'], 0)}/s)",
        )
        bad2 = two["lost"] + two["n_errors"]
        s2, s1 = two["streams_load"], one["streams_load"]
        self.row(
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
        self.row(
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
        self.cluster_cpu_rows(row, two, one, "messages", "after opening", f"the {n:,} open chats'")

    # -- scenario: long-poll ------------------------------------------------------------------

    async def s_longpoll(self) -> None:
        z = self.z
        n, hot, rate, secs = z["polls"], z["poll_hot"], z["poll_rate"], z["poll_secs"]
        measure: list = []
        on_event = self.dispatch(measure)
        srv = await self.server().start()
        ops = await self.operators(on_event)
        net = Net(self.base)
        toks = self.tokens[z["chats"] : z["chats"] + n]

        async def one(i):
            c = StreamClient(net.pick(i), self.base, "visitor", toks[i], on_event)
            c.mode, c.poll_since = "poll", now()
            c.start()
            await asyncio.wait_for(c.ready, 60)
            return c

        vis = await gather_limited(n, one, 100)
        chat_ids = await self.open_chats(vis[:hot], ops)
        await self.pause(1)
        r, win, m0, m = await self.send_and_stop(
            srv, net, vis, ops, chat_ids, hot, rate, secs, 0, measure
        )
        # baseline: held GETs woken by a relayed message
        bl = await self.baseline().start()
        bnet = Net(self.base)
        bmeasure: list = []
        bon = self.dispatch(bmeasure)
        stop: list = []
        polls = [
            asyncio.ensure_future(baseline_poll(bnet.pick(i), self.base, i, bon, stop))
            for i in range(n)
        ]
        bops = [
            StreamClient(bnet.pick(j), self.base, baseline=True, rooms=[], on_event=bon).start()
            for j in range(len(ops))
        ]
        await asyncio.gather(*(o.ready for o in bops))
        await self.pause(1)
        poller = object()
        bsend = [(i, poller, bops[i % len(ops)]) for i in range(hot)]
        bw = self.Window(bl)
        br = await self.message_load(bsend, rate, secs, z["warmup"], 0, bmeasure)
        bwin = bw.close()
        stop.append(1)
        for t in polls:
            t.cancel()
        for c in bops:
            c.abort()
        await bnet.close()
        await bl.stop()
        await drain_time_wait(self.log)
        v, b = pct(r["lat"], 0.99), pct(br["lat"], 0.99)
        self.details["longpoll"] = dict(
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
        g, note = self.gen_note(win, r)
        sc = f"long-poll ({n:,} held; {rate} msg/s)"
        held = m0.get("poll_conns")
        self.row(sc, "polls held", held, f"{n:,}", (held or 0) >= n, None, None, g, self.lag(m))
        self.row(
            sc,
            "delivery p99, ms",
            v and round(v, 2),
            "≤ 20",
            v is not None and v <= 20,
            b and round(b, 2),
            round(v / b, 2) if v and b else None,
            g,
            self.lag(m),
            f"lost {r['lost']}, errors {len(r['errors'])}" + (f"; {note}" if note else ""),
        )

    # -- scenario: reconnect storm ------------------------------------------------------------

    async def s_storm(self) -> None:
        z = self.z
        n = z["storm"]
        srv = await self.server().start()
        ops = await self.operators(n=10)
        net = Net(self.base)
        vis = await self.connect_visitors(net, self.tokens[:n], beacon=False)
        await self.wait_until(lambda: all(c.resumed_at for c in vis), 30)
        m0 = await self.metrics()
        # a burst of operator messages right before the signal: some arrive, some are replayed
        opsby = {cid: o for o in ops for cid in o.cursors}
        hot = [c for c in vis if c.expect][: z["storm_msgs"]]
        for i, c in enumerate(hot):
            cid = next(iter(c.expect))
            if cid in opsby:
                opsby[cid].send_nowait(
                    {
                        "type": "message",
                        "chat_id": cid,
                        "client_id": f"x{i}",
                        "text": "Still there? We are restarting the server.",
                    }
                )
        await asyncio.sleep(0.2)
        before = {id(c): c.welcomes for c in vis}
        for c in vis + ops:
            c.resumed_at = None
        cpu_gen0 = time.process_time()
        slices: list[float] = []

        async def sampler():
            # the generator's CPU per half second: a storm is a burst, its average hides it
            while True:
                c0, w0 = time.process_time(), now()
                await asyncio.sleep(0.5)
                slices.append(100 * (time.process_time() - c0) / (now() - w0))

        samp = asyncio.ensure_future(sampler())
        t0 = now()
        rc, exit_s = await srv.stop()
        srv2 = await self.server().start(timeout=60)
        up_s = now() - t0
        done = await self.wait_until(
            lambda: all(c.welcomes > before[id(c)] and c.resumed_at for c in vis), 120, 0.05
        )
        last = max((c.resumed_at or now()) for c in vis) - t0
        samp.cancel()
        gen_pct = 100 * (time.process_time() - cpu_gen0) / max(now() - t0, 0.001)
        gen_peak = max(slices, default=0.0)
        busy = sum(1 for x in slices if x >= 90) * 0.5
        srv_cpu = srv2.stat().get("cpu_s", 0)
        rtimes = sorted((c.resumed_at or now()) - t0 for c in vis)
        await self.pause(3)
        m = await self.metrics()
        dups = sum(c.dups for c in vis)
        gaps = sum(c.gaps for c in vis)
        polled = sum(1 for c in vis if "poll" in c.transport_used)
        resumed = sum(1 for c in vis if c.resumed_at)
        streams = m["visitor_streams"]
        for c in vis + ops:
            c.abort()
        await net.close()
        await srv2.stop()
        await drain_time_wait(self.log)
        # baseline: the same clients against a bare Tornado restart
        bl = await self.baseline().start()
        bnet = Net(self.base)

        async def bone(i):
            c = StreamClient(bnet.pick(i), self.base, baseline=True, rooms=[i]).start()
            await asyncio.wait_for(c.ready, 60)
            return c

        bvis = await gather_limited(n, bone, 200)
        bbefore = {id(c): c.welcomes for c in bvis}
        t1 = now()
        await bl.stop()
        bl2 = await self.baseline().start(timeout=60)
        await self.wait_until(lambda: all(c.welcomes > bbefore[id(c)] for c in bvis), 120, 0.05)
        blast = max(c.up_since for c in bvis) - t1
        for c in bvis:
            c.abort()
        await bnet.close()
        await bl2.stop()
        await drain_time_wait(self.log)
        self.details["storm"] = dict(
            exit_rc=rc,
            exit_s=round(exit_s, 2),
            restart_ready_s=round(up_s, 2),
            all_resumed=done,
            resumed=resumed,
            dups=dups,
            gaps=gaps,
            fell_back_to_poll=polled,
            streams_before=m0["visitor_streams"],
            streams_after=streams,
            metrics=m,
            gen_cpu_pct=round(gen_pct, 1),
            gen_cpu_slices=[round(x) for x in slices],
            server_cpu_s=srv_cpu,
            baseline_s=round(blast, 2),
        )
        g = f"{gen_pct:.0f}% (peak {gen_peak:.0f}%)"
        note = (
            f"generator-bound: its core was ≥ 90 % busy for {busy:.1f} s of the storm"
            if busy >= 1
            else ""
        )
        note += f"; server CPU {srv_cpu:.1f} s since restart; resumed p50 "
        note += f"{pct(rtimes, 0.5):.1f} s, p90 {pct(rtimes, 0.9):.1f} s"
        sc = f"reconnect storm ({n:,})"
        self.row(
            sc,
            "SIGTERM → last visitor resumed, s",
            round(last, 2),
            "≤ 10",
            done and last <= 10,
            round(blast, 2),
            round(last / max(blast, 0.01), 2),
            g,
            self.lag(m),
            f"exit {exit_s:.1f} s (rc {rc}), restart ready {up_s:.1f} s, "
            f"{polled} fell back to long-poll" + (f"; {note}" if note else ""),
        )
        self.row(
            sc,
            "duplicates / gaps / streams after",
            f"{dups} / {gaps} / {streams:,}",
            f"0 / 0 / {n:,}",
            dups == 0 and streams == n,
            None,
            None,
            g,
            self.lag(m),
            f"{resumed:,} of {n:,} resumed",
        )

    # -- scenario: file limit -----------------------------------------------------------------

    async def s_filelimit(self) -> None:
        z = self.z
        nofile = z["flood_nofile"]
        srv = await self.server(nofile=nofile).start()
        measure: list = []
        on_event = self.dispatch(measure)
        ops = await self.operators(on_event)
        net = Net(self.base)
        k = z["fl_chats"]
        vis = await self.connect_visitors(net, self.tokens[:k], on_event, beacon=False)
        chat_ids = await self.open_chats(vis, ops)
        opsby = {cid: o for o in ops for cid in o.cursors}
        senders = [(chat_ids[i], vis[i], opsby[chat_ids[i]]) for i in range(k)]
        m0 = await self.metrics(reset=True)
        limit = m0["file_limit"]
        tok = self.work / "flood_tokens.json"
        tok.write_text(json.dumps(self.tokens[-200:]))
        half = z["flood"] // 2
        floods = []
        for j in range(2):
            cmd = [
                sys.executable,
                str(BENCH / "flood.py"),
                "--mode",
                "flood",
                "--port",
                str(self.port),
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
        w = self.Window(srv)
        until = asyncio.Event()
        load = asyncio.ensure_future(
            self.message_load(senders, z["fl_rate"], 0, 0, 0.3, measure, until)
        )
        results = []
        for f in floods:
            while True:
                line = await asyncio.get_running_loop().run_in_executor(None, f.stdout.readline)
                if not line or line.startswith("RESULT"):
                    break
            results.append(json.loads(line.split(" ", 1)[1]) if line else {})
        peak_fds = srv.stat().get("fds", 0)
        await self.pause(2)
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
        await self.pause(1)
        m = await self.metrics()
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
        await drain_time_wait(self.log)
        self.details["filelimit"] = dict(
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
        g, note = self.gen_note(win, r2)
        sc = f"file limit ({z['flood']:,} attempts, limit {limit:,})"
        acc = outcomes.get("accepted", 0)
        refused = sum(outcomes.get(key, 0) for key in clean_keys[1:])
        unc = sum(unclean.values())
        self.row(
            sc,
            "accepted / clean refusals / unclean",
            f"{acc:,} / {refused:,} / {unc:,}",
            "unclean 0",
            unc == 0 and refused > 0,
            None,
            None,
            g,
            self.lag(m),
            ", ".join(f"{k2} {v:,}" for k2, v in sorted(outcomes.items()))
            + (f"; {note}" if note else ""),
        )
        ok = disconnects == 0 and lost == 0 and not errs
        self.row(
            sc,
            "chats in progress: disconnects / lost / errors",
            f"{disconnects} / {lost} / {len(errs)}",
            "0 / 0 / 0",
            ok,
            None,
            None,
            g,
            self.lag(m),
            f"{z['fl_chats']} chats at {z['fl_rate']} msg/s during the flood",
        )

    # -- scenario: page views -----------------------------------------------------------------

    async def s_pageviews(self) -> None:
        z = self.z
        sc = "page views (POST /api/visitor/track, wrk)"
        stored_before = self.page_views_stored()  # earlier scenarios sent beacons too
        srv = await self.server().start()
        self.track_built = await self.probe_track()
        if not self.track_built:
            await srv.stop()
            self.row(
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
            self.row(sc, "beacons/s", "skipped: wrk not installed", "≥ 5,000", None)
            return
        net = Net(self.base)
        toks = self.tokens[: z["pv_tokens"]]
        st = await gather_limited(len(toks), lambda i: track(net.pick(i), self.base, toks[i], i))
        tokfile = self.work / "pv_tokens.txt"
        tokfile.write_text("\n".join(toks) + "\n")
        await self.pause(1.5)
        # 1. the beacon path alone (what the target and the baseline are about)
        await self.metrics(reset=True)
        w = self.Window(srv)
        res = await self.wrk(self.base + "/api/visitor/track", tokfile)
        win = w.close(extra_cpu=res["cpu_s"])
        m = await self.metrics(reset=True)
        # 2. the same with 10 operator consoles watching the monitor (visitors_changed)
        ops = await self.operators(n=10)
        await self.pause(1)
        await self.metrics(reset=True)
        res2 = await self.wrk(self.base + "/api/visitor/track", tokfile)
        m2 = await self.metrics()
        await asyncio.sleep(1.2 if SMOKE else 2)  # the next group commit
        for c in ops:
            c.abort()
        await net.close()
        await srv.stop()
        stored = self.page_views_stored() - stored_before
        await drain_time_wait(self.log)
        bl = await self.baseline().start()
        bres = await self.wrk(self.base + "/track", tokfile)
        await bl.stop()
        await drain_time_wait(self.log)
        self.details["pageviews"] = dict(
            ours=res,
            ours_with_consoles=res2,
            baseline=bres,
            window=win,
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
        self.row(
            sc,
            "beacons/s",
            round(rps),
            "≥ 5,000 and ≥ 0.7 × baseline",
            okv,
            round(brps),
            ratio,
            g,
            self.lag(m),
            f"non-2xx {res['non2xx']}, p99 {res['p99_ms']} ms; {stored:,} page views stored, "
            f"{sent:,} answered (both runs and the warm-up)" + (f"; {note}" if note else ""),
        )
        rps2 = res2["rps"]
        self.row(
            sc,
            "beacons/s, 10 consoles watching",
            round(rps2),
            None,
            None,
            round(brps),
            round(rps2 / brps, 2) if brps else None,
            f"{res2['cpu_pct']:.0f}% (wrk)",
            self.lag(m2),
            f"non-2xx {res2['non2xx']}; the monitor's coalesced visitors_changed to each console",
        )

    def page_views_stored(self) -> int:
        """Rows in cutelive's page_view table, read while no server runs."""
        db = sqlite3.connect(f"file:{self.data_dir / 'cutelive.db'}?mode=ro", uri=True)
        try:
            return db.execute("SELECT COUNT(*) FROM page_view").fetchone()[0]
        except sqlite3.Error:
            return 0
        finally:
            db.close()

    async def wrk(self, url: str, tokfile: Path) -> dict:
        z = self.z
        cmd = [
            "wrk",
            "-t1",
            f"-c{z['wrk_conns']}",
            f"-d{z['pv_secs']}s",
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
            "cpu_pct": round(100 * cpu / z["pv_secs"], 1),
            "output": out,
        }

    # -- scenario: monitor fan-out ------------------------------------------------------------

    #: PROTOCOL §6: ``visitors_changed`` is "coalesced, at most one per 150 ms" (the server's
    #: monitor flushes the rows that changed 150 ms after the first change of a window).
    COALESCE_MS = 150

    async def beacon_load(
        self, srv: Proc, path: str, watch: MonitorWatch, consoles: int, parts=None, rate=None
    ) -> dict:
        """Open loop: beacon k (visitor k mod V, its round k div V) is due at t0 + k/rate,
        whatever happened to the ones before. Then waits for every answer and until every
        console lists every visitor at its last accepted page (at most 10 s). The beacons go
        to ``srv``; ``parts`` as in ``Window`` (the server side is several processes)."""
        z = self.z
        rate, secs, nv = rate or z["fan_rate"], z["fan_secs"], watch.nv
        toks = self.tokens[:nv]
        pool = BeaconPool("127.0.0.1", srv.port, path, z["wrk_conns"]).start()
        # As in message_load: no garbage collection in this process during the load, and its
        # own loop lag is watched (it would count as the server's latency).
        gc.collect()
        gc.freeze()
        gc.disable()
        gen_lag: list[float] = []

        async def ticker():
            while True:
                due_t = now() + 0.005
                await asyncio.sleep(0.005)
                gen_lag.append(max(0.0, now() - due_t) * 1000)

        tick = asyncio.ensure_future(ticker())
        t0 = now() + 0.1
        t_rec = t0 + z["warmup"]
        t_end = t_rec + secs
        watch.window = (t_rec, t_end)
        w = self.Window(None if parts else srv, parts=parts)
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
        tick.cancel()
        t_last = now()
        await self.wait_until(lambda: pool.answered >= k, 30, 0.05)
        answered_s = now() - t_last
        await self.wait_until(lambda: watch.converged(consoles), 10, 0.2)
        converged_s = now() - t_last
        gc.enable()
        gc.unfreeze()
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
            gen_lag={"p99_ms": pct(gen_lag, 0.99), "max_ms": max(gen_lag, default=None)},
        )

    @staticmethod
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

    @staticmethod
    def fan_mix(r: dict, nc: int, nv: int) -> tuple[str, str]:
        measured = f"{r['recorded']:,} beacons measured × {nc} consoles"
        mix = (
            f"{r['sent']:,} beacons of {nv:,} visitors: {r['arrivals']:,} arrivals (a first "
            f"beacon starts a visit), {r['sent'] - r['arrivals']:,} page changes"
        )
        return measured, mix

    @staticmethod
    def fan_latency(lat: list[float]) -> dict:
        return {k: pct(lat, p) for k, p in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))}

    async def s_fanout(self) -> None:
        z = self.z
        nc, rate, nv, secs = z["fan_consoles"], z["fan_rate"], z["fan_visitors"], z["fan_secs"]
        sc = f"monitor fan-out ({nc} consoles; {rate} visitor events/s)"
        srv = await self.server().start()
        self.track_built = await self.probe_track()
        if not self.track_built:
            await srv.stop()
            self.row(sc, "change on every console p99, ms", "not built yet", "≤ 250", None)
            return
        watch = MonitorWatch(nv)
        ops = await self.operators(watch.on_event, n=nc)
        await self.pause(1)
        await self.metrics(reset=True)
        r = await self.beacon_load(srv, "/api/visitor/track", watch, nc)
        m = await self.metrics()
        async with self.op_sessions[0].get(self.base + "/api/console/visitors") as resp:
            listed = len((await resp.json(content_type=None))["visitors"])
        drops = sum(len(c.close_codes) for c in ops)
        for c in ops:
            c.abort()
        await srv.stop()
        await drain_time_wait(self.log)
        # baseline: each beacon fanned out at once to every socket in the monitor room (-1)
        bl = await self.baseline().start()
        bnet = Net(self.base)
        bwatch = MonitorWatch(nv)
        bops = [
            StreamClient(
                bnet.pick(j), self.base, baseline=True, rooms=[-1], on_event=bwatch.on_event
            ).start()
            for j in range(nc)
        ]
        await asyncio.gather(*(asyncio.wait_for(o.ready, 30) for o in bops))
        await self.pause(1)
        br = await self.beacon_load(bl, "/track", bwatch, nc)
        for c in bops:
            c.abort()
        await bnet.close()
        await bl.stop()
        await drain_time_wait(self.log)
        lat, blat = self.fan_latency(r["lat"]), self.fan_latency(br["lat"])
        ev, bev = self.per_console(watch, nc, secs), self.per_console(bwatch, nc, secs)
        win, bwin = r.pop("window"), br.pop("window")
        r.pop("lat"), br.pop("lat")
        self.details["fanout"] = dict(
            ours=dict(r, latency_ms=lat, per_console=ev, window=win, metrics=m, listed=listed),
            baseline=dict(br, latency_ms=blat, per_console=bev, window=bwin),
            console_disconnects=drops,
        )
        g, note = self.gen_note(win, r)
        _, bnote = self.gen_note(bwin, br)
        if bnote:
            note += ("; " if note else "") + f"baseline run: {bnote}"
        lag = self.lag(m)
        measured, mix = self.fan_mix(r, nc, nv)
        coalesce = (
            f"the server coalesces visitors_changed over {self.COALESCE_MS} ms (PROTOCOL §6), "
            f"so up to ~{self.COALESCE_MS} ms is expected; the baseline sends each beacon at "
            "once (no ratio)"
        )
        self.row(
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
        self.row(
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
        self.row(
            sc,
            "visitors_changed per console per s",
            round(ev["mean"], 1),
            None,
            None,
            round(bev["mean"], 1),
            None,
            g,
            lag,
            f"at most {1000 / self.COALESCE_MS:.1f}/s when coalesced; consoles "
            f"{ev['min']:.1f}-{ev['max']:.1f}/s, {ev['rows_per_event']:.1f} rows per event, "
            f"gap p50 {fmt(ev['gap_p50_ms'], 0)} ms, min {fmt(ev['gap_min_ms'], 0)} ms; "
            f"baseline one event per beacon",
        )
        bad = r["lost"] + r["errors"] + drops
        self.row(
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
        self.row(
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

    # -- scenario: the monitor fan-out across processes ----------------------------------------

    async def cluster_fanout_side(self, kind: str) -> dict:
        """The monitor fan-out with every beacon going to process a and every console on b, so
        each change crosses processes: the consoles connect, the server side settles, an idle
        window (the consoles' own cost), then the fan-out's beacon load (``beacon_load``):
        latency until every console has the row, lost pairs, and the CPU of each part from the
        first beacon until every console had every change (at most 10 s after the last)."""
        z = self.z
        nc, nv, secs, rate = z["fan_consoles"], z["clf_visitors"], z["fan_secs"], z["clf_rate"]
        a, b = await self.cluster_servers(kind)
        base_b = f"http://127.0.0.1:{b.port}"
        watch = MonitorWatch(nv)
        ops = await self.operators(watch.on_event, n=nc, base=base_b)
        await self.pause(1)
        settle_s = await self.settle(a, b, kind)
        idle = await self.idle_rate(a, b, kind, z["cl_idle"])
        ports = sorted({a.port, b.port})
        for port in ports:
            await self.metrics(reset=True, port=port)

        def parts():
            return self.server_cpu(a, b, kind)

        c0, w0 = parts(), now()
        r = await self.beacon_load(a, "/api/visitor/track", watch, nc, parts=parts, rate=rate)
        wall = now() - w0
        c1 = parts()
        cpu = {k: c1[k] - c0[k] for k in c1}
        m = {port: await self.metrics(port=port) for port in ports}
        async with self.op_sessions[0].get(base_b + "/api/console/visitors") as resp:
            listed = len((await resp.json(content_type=None))["visitors"])
        drops = sum(len(c.close_codes) for c in ops)
        for c in ops:
            c.abort()
        exits = [(await p.stop())[0] for p in {id(a): a, id(b): b}.values()]
        await drain_time_wait(self.log)
        lat = self.fan_latency(r.pop("lat"))
        self.log(
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
            per_console=self.per_console(watch, nc, secs),
            console_disconnects=drops,
            listed=listed,
            **self.cpu_per_1000(cpu, idle, wall, r["sent"]),
            wall_s=round(wall, 2),
            metrics={str(p): mm for p, mm in m.items()},
            lag=" · ".join(self.lag(m[p]) for p in ([a.port, b.port] if b is not a else [a.port])),
            exit=exits,
        )

    async def s_cluster_fanout(self) -> None:
        z = self.z
        nc, nv, rate = z["fan_consoles"], z["clf_visitors"], z["clf_rate"]
        one, two = await self.cluster_sides("cluster_fanout", self.cluster_fanout_side)
        sc = f"cluster fan-out ({nc} consoles; {rate} visitor events/s)"
        row, g, lag = self.cluster_row_writer(sc, two, one)
        l2, l1 = two["latency_ms"], one["latency_ms"]
        measured, mix = self.fan_mix(two, nc, nv)
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
            f"coalesces visitors_changed over {self.COALESCE_MS} ms (PROTOCOL §6); max "
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
        self.row(
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
        self.cluster_cpu_rows(
            row, two, one, "visitor events", "after the consoles connected", f"the {nc} consoles'"
        )

    # -- scenario: cold start and widget weight -----------------------------------------------

    async def s_coldstart(self) -> None:
        z = self.z
        exe = ROOT / "dist" / "cutelive"
        sc = "cold start (dist/cutelive)"
        sources = [
            ROOT / "cutelive.py",
            ROOT / "build.spec",
            *(ROOT / "livesupport").rglob("*.py"),
            *(ROOT / "assets").rglob("*"),
        ]
        stale = exe.exists() and max(p.stat().st_mtime for p in sources) > exe.stat().st_mtime
        if not exe.exists() or stale:
            why = "older than the sources" if stale else "missing"
            if self.mode == "smoke":
                self.row(
                    sc, "first HTTP 200", f"skipped: dist/cutelive {why} (smoke does not build)"
                )
                return
            self.log(f"  dist/cutelive is {why}: building it with pyinstaller")
            subprocess.run(
                ["pyinstaller", "--noconfirm", "--log-level", "WARN", "build.spec"],
                cwd=ROOT,
                check=True,
            )
        times, rsss = [], []
        d = self.work / "cold"
        d.mkdir()
        for _ in range(z["cold_runs"]):
            port = free_port()
            p = Proc(
                "exe",
                [str(exe), "serve", "--port", str(port)],
                port,
                self.work / "cold.log",
                "/api/status",
                cwd=d,
            )
            await p.start()
            times.append(p.ready_s)
            await self.pause(2)
            rss = sum(proc_stat(q).get("VmRSS", 0) for q in [p.pid] + children(p.pid))
            rsss.append(rss)
            await p.stop()
        # baselines to their first 200: bare Tornado frozen the same way (bench/baseline.spec),
        # and under python3
        frozen = BENCH / "dist" / "baseline"
        if not frozen.exists() or (BENCH / "baseline.py").stat().st_mtime > frozen.stat().st_mtime:
            self.log("  building the frozen baseline with pyinstaller")
            subprocess.run(
                ["pyinstaller", "--noconfirm", "--log-level", "WARN", "--distpath", "dist"]
                + ["--workpath", str(self.work / "pyi"), "baseline.spec"],
                cwd=BENCH,
                check=True,
            )
        ftimes = []
        for _ in range(z["cold_runs"]):
            port = free_port()
            db = self.work / "cold-baseline.db"
            cmd = [str(frozen), "--port", str(port), "--db", str(db)]
            fb = await Proc("frozen", cmd, port, self.work / "cold.log", "/status", cwd=d).start()
            ftimes.append(fb.ready_s)
            await fb.stop()
        port = free_port()
        b = await self.baseline(port=port).start()
        await self.pause(2)
        brss = b.stat()["VmRSS"]
        await b.stop()
        ours = times[0] * 1000
        fbase = min(ftimes) * 1000
        self.details["coldstart"] = dict(
            first_200_ms=[round(t * 1000) for t in times],
            rss_kb=rsss,
            frozen_baseline_ms=[round(t * 1000) for t in ftimes],
            python_baseline_ms=round(b.ready_s * 1000),
            baseline_rss_kb=brss,
        )
        self.row(
            sc,
            "first HTTP 200, ms (empty dir)",
            round(ours),
            "≤ 2 × baseline; ≤ 500 where it is ≤ 250",
            ours <= 2 * fbase and (fbase > 250 or ours <= 500),
            round(fbase),
            round(ours / fbase, 2),
            None,
            None,
            "baseline: bench/baseline.py frozen as build.spec freezes cutelive (fastest of "
            + ", ".join(f"{t * 1000:.0f}" for t in ftimes)
            + f"); under python3 {b.ready_s * 1000:.0f}; ours, runs: "
            + ", ".join(f"{t * 1000:.0f}" for t in times),
        )
        mb = rsss[0] / 1024
        self.row(
            sc,
            "idle RSS, MB (bootloader + Python)",
            round(mb, 1),
            "≤ 60",
            mb <= 60,
            round(brss / 1024, 1),
            round(mb / (brss / 1024), 2),
            None,
            None,
        )

    async def s_widget(self, port: int | None = None) -> None:
        sc = "widget weight (gzip, as served)"
        own = None
        if port is None:
            port = free_port()
            own = await self.server(port=port).start()

        def get(path: str) -> tuple[int, bool]:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", path, headers={"Accept-Encoding": "gzip", "User-Agent": UA})
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                raise RuntimeError(f"GET {path}: HTTP {r.status}")
            gz = r.getheader("Content-Encoding") == "gzip"
            c.close()
            return (len(body) if gz else len(gzip.compress(body))), gz

        loader, lgz = get("/widget.js")
        # Everything the widget can load, as tests/test_widget_budget.py counts it: every
        # module beside the loader (chat.js loads files.js itself), the stylesheet, /chat.
        folder = ROOT / "assets" / "widget"
        parts = [f"/assets/widget/{p.name}" for p in sorted(folder.glob("*.js"))]
        parts = [p for p in parts if not p.endswith("/widget.js")]
        parts += ["/assets/widget/chat.css", "/chat"]
        sizes = {"/widget.js": loader}
        for path in parts:
            sizes[path] = get(path)[0]
        before = loader + get("/api/widget/config")[0] + get("/assets/img/offline.svg")[0]
        # Files the loader fetches once the page is idle, before any click (the realtime
        # connection for presence and invitations), as far as widget.js says so.
        idle = [p for p in parts if p.rsplit("/", 1)[1] in ("stream.js", "presence.js")]
        idle_bytes = sum(sizes[p] for p in idle)
        if own:
            await own.stop()
        total = sum(sizes.values())
        self.details["widget"] = dict(sizes=sizes, served_gzip=lgz, before_click=before)
        self.row(
            sc,
            "loader /widget.js, bytes",
            loader,
            "≤ 4,096",
            loader <= 4096,
            note=f"with the config and button image {before:,} B; plus "
            f"{' + '.join(p.rsplit('/', 1)[1] for p in idle)} loaded when the page is idle: "
            f"{before + idle_bytes:,} B before the click",
        )
        self.row(
            sc,
            "whole widget, bytes",
            total,
            "≤ 30,720",
            total <= 30720,
            note=" + ".join(f"{p.rsplit('/', 1)[1]} {s:,}" for p, s in sizes.items()),
        )

    # -- the run ------------------------------------------------------------------------------

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


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


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
    global SMOKE
    SMOKE = mode == "smoke"
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
