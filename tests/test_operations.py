"""Operating the server: health and readiness for proxies, the drain after SIGTERM, and
``serve --workers N`` (several processes on one port, with PostgreSQL and a real Redis).

Every server here is a real process over real HTTP; the Redis server is Debian's
``redis-server``, started privately by the test that needs it.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import socket
import subprocess
import time

import conftest
import pytest
import requests
from backends import Postgres, _free_port
from conftest import SERVER_CMD, TIMEOUT, Server, wait_for

TOKEN = "health-check-token-7f3a"


def get(server: Server, path: str, **headers: str) -> requests.Response:
    """One request on a connection of its own (with ``--workers``, any process may take it)."""
    return requests.get(server.url + path, headers=headers, timeout=TIMEOUT)


# -- health and readiness --------------------------------------------------------------------


def test_health_and_ready_answer_loopback(make_server):
    server = make_server()
    r = get(server, "/api/health")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok", "pid": server.proc.pid}
    r = get(server, "/api/ready")
    assert r.status_code == 200, r.text
    assert r.json() == {"ready": True, "pid": server.proc.pid}
    assert r.headers["Cache-Control"] == "no-store"
    # Only GET; a change is refused before anything else, as on every route.
    r = requests.post(server.url + "/api/ready", json={}, timeout=TIMEOUT)
    assert r.status_code == 405


def test_from_elsewhere_health_needs_the_token(make_server):
    """A client that is not a loopback one (relayed by a proxy, or a trusted proxy's
    X-Forwarded-For naming another address) gets 404 without the token, 403 with a wrong one,
    and the answer with the right one."""
    server = make_server(config={"server": {"health_token": TOKEN, "trusted_proxies": "127.0.0.1"}})
    for path in ("/api/health", "/api/ready"):
        for relayed in ({"X-Forwarded-For": "203.0.113.9"}, {"X-Real-IP": "203.0.113.9"}):
            r = get(server, path, **relayed)
            assert r.status_code == 404 and r.json()["error"] == "not_found", (path, r.text)
            for wrong in ("Bearer nope", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN):
                r = get(server, path, Authorization=wrong, **relayed)
                assert r.status_code == 403, (path, wrong, r.status_code, r.text)
                assert r.json()["error"] == "forbidden"
            r = get(server, path, Authorization=f"Bearer {TOKEN}", **relayed)
            assert r.status_code == 200, (path, r.text)
            assert r.json()["pid"] == server.proc.pid
    # /api/metrics keeps to loopback: the health token does not open it.
    r = get(
        server, "/api/metrics", Authorization=f"Bearer {TOKEN}", **{"X-Forwarded-For": "1.2.3.4"}
    )
    assert r.status_code == 404


def test_without_a_token_health_is_loopback_only(make_server):
    server = make_server()
    for auth in ("", "Bearer ", "Bearer anything"):
        headers = {"X-Forwarded-For": "203.0.113.9"} | ({"Authorization": auth} if auth else {})
        r = get(server, "/api/ready", **headers)
        assert r.status_code == 404, (auth, r.text)
    assert get(server, "/api/ready").status_code == 200


def test_sigterm_reports_not_ready_while_the_drain_serves_then_a_second_signal_ends_it(
    make_server,
):
    server = make_server(config={"server": {"drain_time": "60s"}})
    visitor = server.visitor()
    ws = visitor.connect()
    server.proc.send_signal(signal.SIGTERM)

    def not_ready():
        r = get(server, "/api/ready")
        return r.json() if r.status_code == 503 else None  # (a 503 Response is falsy)

    body = wait_for(not_ready, what="/api/ready answering 503 after SIGTERM")
    assert body == {"ready": False, "reason": "shutting down", "pid": server.proc.pid}
    # Still serving during the drain: alive, new requests answered, streams open.
    assert get(server, "/api/health").status_code == 200
    r = requests.post(server.url + "/api/visitor/token", json={}, timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    assert ws.closed is None
    assert server.proc.poll() is None
    # A second signal ends the drain: the usual shutdown follows at once.
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(15) == 0
    assert time.monotonic() - started < 10
    assert ws.wait_closed()[0] == 1001
    log = "".join(server.log_lines)
    assert "[server] drain_time" in log and "stopped" in log


def test_the_drain_ends_by_itself_and_the_process_exits(make_server):
    server = make_server(config={"server": {"drain_time": "3s"}})
    # Answering requests: its signal handlers are in place (they come after "listening on").
    assert get(server, "/api/ready").status_code == 200
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    assert time.monotonic() - started >= 3  # it kept serving for the drain

    def logged(text: str) -> datetime.datetime:
        (line,) = [line for line in server.log_lines if text in line]
        return datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")

    draining = logged("still serving for 3 s ([server] drain_time)")
    assert (logged("INFO cutelive: shutting down") - draining).total_seconds() >= 3
    with pytest.raises(requests.ConnectionError):
        get(server, "/api/health")


# -- serve --workers N -------------------------------------------------------------------------


def run_serve(tmp_path, *args: str, ini: str = "") -> subprocess.CompletedProcess:
    path = tmp_path / "t.ini"
    path.write_text(ini)
    return subprocess.run(
        SERVER_CMD + ["serve", "-c", str(path), "--data-dir", str(tmp_path / "data")] + list(args),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_workers_on_sqlite_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as probe:  # the port stays free: nothing listened
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    r = run_serve(tmp_path, "--workers", "2", "--port", str(port), ini="[server]\nbogus = 1\n")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cutelive: "), lines
    assert "[database] url" in lines[0] and "--workers 2" in lines[0]
    assert not (tmp_path / "data").exists()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


def test_workers_without_redis_is_refused_before_anything_starts(tmp_path):
    # The database is never reached: its port is closed, and the refusal comes first.
    ini = f"[database]\nurl = postgresql://cutelive@127.0.0.1:{_free_port()}/nowhere\n"
    r = run_serve(tmp_path, "--workers", "3", "--port", "0", ini=ini)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "[cluster] redis_url" in lines[0], lines
    assert not (tmp_path / "data").exists()


def test_workers_flag_is_documented_and_checked(tmp_path):
    r = subprocess.run(SERVER_CMD + ["serve", "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "--workers N" in r.stdout
    assert "[database] url" in r.stdout and "[cluster] redis_url" in r.stdout
    for bad in ("0", "-1", "two"):
        r = run_serve(tmp_path, "--workers", bad, "--port", "0")
        assert r.returncode == 2 and "--workers" in r.stderr, (bad, r.stderr)
        assert not (tmp_path / "data").exists()


@pytest.fixture
def redis_url(tmp_path):
    """A private Redis server (Debian's redis-server) on a free port, without persistence;
    stopped at the end."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed: apt-get install -y redis-server"
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + ["--dir", str(tmp_path), "--daemonize", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def pong() -> bool:
        assert proc.poll() is None, "redis-server exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    try:
        wait_for(pong, what="redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


class WorkersServer(Server):
    """A server started with ``--workers N`` (given before ``serve``, as a top-level flag)."""

    def __init__(self, tmp, workers: int, **kwargs):
        super().__init__(tmp, **kwargs)
        self.workers = workers

    def start(self, port: int | None = None) -> Server:
        plain = conftest.SERVER_CMD
        conftest.SERVER_CMD = plain + ["--workers", str(self.workers)]
        try:
            return super().start(port)
        finally:
            conftest.SERVER_CMD = plain


def _alive(pid: int) -> bool:
    """Running (not gone, nor a zombie waiting for its parent)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[1])


def _pids(server: Server, want: int, exclude: set[int] = frozenset()) -> set[int]:
    """The pids answering /api/health on the one port, once ``want`` distinct live ones
    (not in ``exclude``) have answered."""
    seen: set[int] = set()

    def enough():
        for _ in range(10):
            seen.add(get(server, "/api/health").json()["pid"])
        live = {p for p in seen - exclude if _alive(p)}
        return live if len(live) >= want else None

    return wait_for(enough, timeout=20, what=f"{want} workers answering on one port")


def test_two_workers_serve_one_port_are_replaced_when_killed_and_stop_together(
    tmp_path, postgres, redis_url
):
    server = WorkersServer(
        tmp_path,
        2,
        config={"cluster": {"redis_url": redis_url}},
        database_url=postgres.new_database(),
    )
    try:
        server.start()
        parent = server.proc.pid
        workers = _pids(server, 2)
        assert len(workers) == 2 and parent not in workers
        assert {_parent_of(p) for p in workers} == {parent}
        for _ in range(4):
            r = get(server, "/api/ready")
            assert r.status_code == 200 and r.json()["pid"] in workers, r.text

        # A worker killed outright is replaced; the other one serves on meanwhile.
        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda: not _alive(killed), what="the killed worker reaped")
        now = _pids(server, 2, exclude={killed})
        assert killed not in now and len(now) == 2
        assert {_parent_of(p) for p in now} == {parent}
        assert (workers - {killed}) <= now
        log = "".join(server.log_lines)
        assert f"worker {killed} was killed by signal 9; starting another" in log

        # SIGTERM to the parent stops every worker; the exit status is 0.
        assert server.stop() == 0, "".join(server.log_lines[-20:])
        assert not any(_alive(p) for p in now | {parent})
        with pytest.raises(requests.ConnectionError):
            get(server, "/api/health")
        assert "".join(server.log_lines).count("INFO cutelive[") > 0
    finally:
        server.kill()


def test_workers_a_start_that_cannot_work_is_refused_once(tmp_path, redis_url):
    """The first worker starts alone: a database out of reach stops the start with its one
    line and status 2, and no second worker is started."""
    ini = (
        f"[database]\nurl = postgresql://cutelive@127.0.0.1:{_free_port()}/nowhere\n"
        f"[cluster]\nredis_url = {redis_url}\n"
    )
    r = run_serve(tmp_path, "--workers", "2", "--port", "0", ini=ini)
    assert r.returncode == 2, r.stderr
    refusals = [line for line in r.stderr.splitlines() if line.startswith("cutelive: ")]
    assert len(refusals) == 1 and "[database] url" in refusals[0], r.stderr
    assert r.stderr.count("worker") == 1, r.stderr  # "worker N started", once


def test_workers_stop_by_themselves_when_the_main_process_is_killed(tmp_path, postgres, redis_url):
    server = WorkersServer(
        tmp_path,
        2,
        config={"cluster": {"redis_url": redis_url}},
        database_url=postgres.new_database(),
    )
    workers: set[int] = set()
    try:
        server.start()
        workers = _pids(server, 2)
        server.proc.kill()  # SIGKILL: no chance to pass anything on
        server.proc.wait()
        wait_for(lambda: not any(_alive(p) for p in workers), what="the workers to stop")
        log = "".join(server.log_lines)
        assert log.count("the main process is gone; stopping") == 2, log
    finally:
        server.kill()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_ready_follows_the_database_while_health_stays_ok(tmp_path):
    """On PostgreSQL, /api/ready asks the database: a database server that is down makes the
    process not ready (it stays alive), and ready again once the database is back."""
    pg = Postgres(private=True)  # a server of its own, stopped and started here
    server = Server(tmp_path, database_url=pg.new_database())
    try:
        server.start()
        assert get(server, "/api/ready").json()["ready"] is True
        pg.stop_server()
        body = wait_for(
            lambda: (r := get(server, "/api/ready")).status_code == 503 and r.json(),
            what="not ready while the database is down",
        )
        assert body == {
            "ready": False,
            "reason": "the database cannot be used: storage_unavailable",
            "pid": server.proc.pid,
        }
        assert get(server, "/api/health").status_code == 200
        pg.start_server()
        wait_for(
            lambda: get(server, "/api/ready").status_code == 200,
            timeout=20,
            what="ready again once the database is back",
        )
    finally:
        server.stop()
        pg.stop()
