"""The runner's core, which every scenario uses: the sizes per mode, the work folder, starting
cutelive and the bare-Tornado baseline, the table's rows, the operators and visitor tokens
of setup, the CPU window and the generator's notes, and small waiting helpers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import infra
from clients import IPS, Net, StreamClient, gather_limited, new_token, now, session, track
from infra import BENCH, ROOT, Postgres, Proc, Redis, free_port, system_busy

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
    ("pv_tokens", 2_000, 1_000, 200),
    ("pv_secs", 20, 8, 2),
    ("pv_rounds", 4, 2, 1),
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
    ("clf_rate", 100, 100, 50),
    ("clf_visitors", 1_000, 500, 50),
]
SIZES = {
    mode: {row[0]: row[i] for row in _SIZE_TABLE}
    for i, mode in enumerate(("full", "quick", "smoke"), start=1)
}


class Harness:
    """The run's shared state and core, which every scenario function (``scen_*.py``) takes
    as its ``bench`` argument."""

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
        self.track_built = False
        self.started = now()
        #: The 1-minute load average when the run began (a quiet machine: under 1).
        self.load_at_start = os.getloadavg()[0]

    async def pause(self, seconds: float) -> None:
        """Settle time between steps; short in smoke runs, which must finish within a minute."""
        await asyncio.sleep(min(seconds, 0.3) if infra.SMOKE else seconds)

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

    async def setup(self, cluster: list[str]) -> None:
        """Operators (the admin by the CLI, the rest over the API) and a pool of visitor tokens;
        ``cluster``: the scenarios that need PostgreSQL and Redis (run only when named)."""
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

            cluster_only = bool(self.only) and set(self.only) <= set(cluster)
            n_ops = z["cl_ops"] if cluster_only else max(z["ops"], z["cl_ops"])
            self.op_sessions = [admin] + await gather_limited(n_ops - 1, create, 8)
            need = z["cl_chats"]
            if "cluster_fanout" in (self.only or ()):
                need += z["clf_visitors"]  # visitors of their own: the chats' stay open
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

    # -- visitors and waiting -----------------------------------------------------------------

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

    async def wait_until_async(self, fetch, pred, timeout: float, step: float = 0.1) -> bool:
        t0 = now()
        while now() - t0 < timeout:
            if pred(await fetch()):
                return True
            await asyncio.sleep(step)
        return False


# -- measurement helpers --------------------------------------------------------------------


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


def gen_note(w: dict, load: dict | None = None) -> tuple[str, str]:
    """(gen CPU, notes) of a row from a ``Window``'s figures and a load's generator lag."""
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


def lag_text(m: dict) -> str:
    """The server's event-loop lag from its ``/api/metrics``, as the table shows it."""
    lg = m.get("loop_lag", {})
    return f"{lg.get('p99_ms', 0):.0f}/{lg.get('max_ms', 0):.0f}"


def dispatch(measure):
    """An ``on_event`` that passes every event to each handler in ``measure`` (a list the
    scenario changes as it goes)."""

    def on_event(c, ev):
        for fn in list(measure):
            fn(c, ev)

    return on_event
