"""Operating the server: health and readiness for proxies, and the drain after SIGTERM.

Every server here is a real process over real HTTP.
"""

from __future__ import annotations

import datetime
import signal
import time

import pytest
import requests
from backends import Postgres
from conftest import TIMEOUT, Server, wait_for

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
