"""The bench's processes and machine: the servers it starts (``Proc``, pinned to the server
CPU), the private PostgreSQL and Redis of the cluster scenarios, CPU and memory from /proc,
the TIME_WAIT drain between scenarios, and small formatting helpers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import glob
import http.client
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clients import now

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

SERVER_CPU, GEN_CPU = 0, 1

# -- small helpers ----------------------------------------------------------------------------


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


class QuietGenerator:
    """While a load is measured: no garbage collection in this generator process (its heap is
    frozen first), and its own loop lag sampled every 5 ms, since its pauses would count as the
    server's latency. ``start``; ``stop_sampling`` when the load ends; ``end`` after the wait
    for the last answers; ``lag_figures`` for the report."""

    def __init__(self) -> None:
        self.lag: list[float] = []
        self._sampler: asyncio.Future | None = None

    def start(self) -> QuietGenerator:
        gc.collect()
        gc.freeze()
        gc.disable()

        async def sample() -> None:
            while True:
                due_t = now() + 0.005
                await asyncio.sleep(0.005)
                self.lag.append(max(0.0, now() - due_t) * 1000)

        self._sampler = asyncio.ensure_future(sample())
        return self

    def stop_sampling(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()

    def end(self) -> None:
        gc.enable()
        gc.unfreeze()

    def lag_figures(self) -> dict:
        return {"p99_ms": pct(self.lag, 0.99), "max_ms": max(self.lag, default=None)}


def fmt(v, digits=1) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def free_port() -> int:
    """A free port below the kernel's range for outgoing connections: a server restarted on
    its port (the reconnect storm) could otherwise find it taken by one of the thousands of
    client sockets reconnecting meanwhile, or a client connected to itself."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(max(1024, low - 12_000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # (no luck: any free port)
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
            # One patient probe once connected: a server busy with a reconnect storm answers
            # late, and a probe that gave up and asked again would queue behind the storm anew.
            wait = max(2.0, timeout - (now() - self.started))
            if await asyncio.get_running_loop().run_in_executor(None, self.ping, wait):
                self.ready_s = now() - self.started
                return self
            if self.p.poll() is not None or now() - self.started > timeout:
                raise RuntimeError(f"{self.name} did not start; see {self.log_path}")
            await asyncio.sleep(0.005)

    def ping(self, timeout: float = 2.0) -> bool:
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
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


#: A process of its own that asks ``GET path`` until it is answered 200 and prints how long
#: that took. The load generator's own loop is saturated in a reconnect storm, so a probe run
#: from it measures the generator as much as the server.
_PROBE = """
import http.client, sys, time
port, path, t0 = int(sys.argv[1]), sys.argv[2], time.monotonic()
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("GET", path)
        if c.getresponse().status == 200:
            break
    except OSError:
        time.sleep(0.005)
print(time.monotonic() - t0, flush=True)
"""


class ReadyProbe:
    """Measures when a server about to start first answers ``path``, from outside the
    generator's process (see ``_PROBE``)."""

    def __init__(self, port: int, path: str):
        self.p = subprocess.Popen(
            [sys.executable, "-c", _PROBE, str(port), path],
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {GEN_CPU}),
        )

    def seconds(self, timeout: float = 120) -> float | None:
        """Seconds from the probe's start to the first 200, or None if none came."""
        try:
            out, _ = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return None
        return float(out) if out.strip() else None


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


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()
