"""The command line: version, operators and passwords without a running console, the
configuration checked before anything starts, and what a started server stores."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tomllib

import argon2
import requests
from conftest import PASSWORD, ROOT, SERVER_CMD, TIMEOUT, login


def test_cli_passwd_ends_the_sessions_of_a_running_server(server):
    bob = server.console("bob")
    bws = bob.connect()
    r = server.run_cli("passwd", "bob", "--password-stdin", stdin="brand new horse\n")
    assert r.returncode == 0, r.stderr
    assert bob.get("/api/console/chats").status_code == 401
    # The server learns of it from the database within seconds (the CLI cannot reach it).
    ev = bws.wait(lambda e: e["type"] == "session_ended", timeout=15, what="session_ended")
    assert ev["reason"] == "expired"
    assert bws.wait_closed()[0] == 4001


def run(*args: str, stdin: str | None = "", timeout=60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        SERVER_CMD + list(args), input=stdin, capture_output=True, text=True, timeout=timeout, **kw
    )


def test_cli_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"cutelive {version}"


def test_cli_create_operator_never_takes_the_password_as_an_argument(make_server):
    server = make_server()
    r = server.run_cli("create-operator", "--help")
    assert r.returncode == 0 and "--password-stdin" in r.stdout
    assert not re.search(r"--password(?!-stdin)", r.stdout), r.stdout
    for args in (
        ["carol", "secret horse 1"],
        ["carol", "--password", "secret horse 1"],
        ["carol", "--password=secret horse 1"],
        ["carol", "-p", "secret horse 1"],
    ):
        r = server.run_cli("create-operator", *args, stdin="")
        assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert login(server, "carol", "secret horse 1")[1].status_code == 401

    r = server.run_cli(
        "create-operator",
        "carol",
        "--password-stdin",
        "--display-name",
        "Carol",
        stdin="secret horse 1\n",
    )
    assert r.returncode == 0, r.stderr
    assert "carol" in r.stdout
    c, r = login(server, "carol", "secret horse 1")
    assert r.status_code == 200
    assert r.json()["operator"]["display_name"] == "Carol"
    assert r.json()["operator"]["is_admin"] is False

    # Without --password-stdin it prompts twice (with no terminal, getpass reads stdin).
    def prompted(username: str, answers: str) -> subprocess.CompletedProcess:
        cmd = SERVER_CMD + [
            "create-operator",
            username,
            "--admin",
            "-c",
            str(server.ini),
            "--data-dir",
            str(server.data_dir),
        ]
        # A new session has no controlling terminal, so getpass falls back to stdin.
        return subprocess.run(
            cmd, input=answers, capture_output=True, text=True, timeout=60, start_new_session=True
        )

    r = prompted("dave", "dave's horse 4\ndave's horse 4\n")
    assert r.returncode == 0, r.stderr
    assert "Password" in r.stderr and "Repeat" in r.stderr
    _, r = login(server, "dave", "dave's horse 4")
    assert r.status_code == 200 and r.json()["operator"]["is_admin"] is True
    r = prompted("erin", "erin's horse 5\nsomething else\n")
    assert r.returncode == 1 and "do not match" in r.stderr, r.stderr
    assert login(server, "erin", "erin's horse 5")[1].status_code == 401

    # Bad input is refused by name, and nothing is created.
    r = server.run_cli("create-operator", "carol", "--password-stdin", stdin="other horse 1\n")
    assert r.returncode == 1 and "taken" in r.stderr
    r = server.run_cli("create-operator", "frank", "--password-stdin", stdin="short\n")
    assert r.returncode == 1 and "password" in r.stderr
    assert login(server, "frank", "short")[1].status_code == 401


def test_cli_passwd_changes_the_password(server):
    r = server.run_cli("passwd", "bob", "--password-stdin", stdin="brand new horse\n")
    assert r.returncode == 0, r.stderr
    assert login(server, "bob", PASSWORD)[1].status_code == 401
    assert login(server, "bob", "brand new horse")[1].status_code == 200
    # A password that is too short changes nothing; an unknown operator is an error.
    r = server.run_cli("passwd", "bob", "--password-stdin", stdin="short\n")
    assert r.returncode == 1
    assert login(server, "bob", "brand new horse")[1].status_code == 200
    r = server.run_cli("passwd", "nobody", "--password-stdin", stdin="brand new horse\n")
    assert r.returncode == 1 and "nobody" in r.stderr


def test_cli_bad_config_value_stops_the_start(tmp_path):
    data = tmp_path / "data"
    for ini, named in (
        ("[chat]\nqueue_timeout = soon\n", "[chat] queue_timeout"),
        ("[server]\nport = 70000\n", "[server] port"),
        ("[server]\nport = eighty\n", "[server] port"),
        ("[limits]\nvisitor_messages = lots\n", "[limits] visitor_messages"),
        ("[database]\nsynchronous = sometimes\n", "[database] synchronous"),
    ):
        path = tmp_path / "bad.ini"
        path.write_text(ini)
        # No --port flag here: it would override the ini's port.
        r = run("serve", "-c", str(path), "--data-dir", str(data), stdin=None, timeout=30)
        assert r.returncode == 2, (ini, r.stderr)
        assert named in r.stderr and "expected" in r.stderr, r.stderr
    # A flag is checked the same way.
    r = run("serve", "--data-dir", str(data), "--port", "eighty", stdin=None, timeout=30)
    assert r.returncode == 2 and "[server] port" in r.stderr
    assert "expected a port number" in r.stderr, r.stderr
    assert not data.exists()  # it stopped before touching anything


def test_cli_a_taken_port_is_one_line_and_creates_nothing(tmp_path):
    """Started as the README starts it (no flags but the port, the data directory under the
    current one), on a port another program holds."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        r = run("--port", str(port), stdin=None, timeout=30, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines() == [
        f"cutelive: 127.0.0.1:{port} is already in use by another program; "
        "choose another port with --port or [server] port"
    ]
    assert list(tmp_path.iterdir()) == []  # no cutelive-data/, no database


def test_cli_unknown_config_key_is_reported_by_name(make_server):
    server = make_server(config={"chat": {"queue_timeot": "1s"}, "nosuch": {"key": "1"}})
    log = "".join(server.log_lines)
    assert "[chat] queue_timeot" in log
    assert "[nosuch] key" in log
    assert requests.get(server.url + "/api/status", timeout=TIMEOUT).status_code == 200


def test_a_server_started_from_the_command_line_stores_argon2id_hashes(make_server):
    """The cheap hasher of the in-process tests is handed in by their fixture only: a server
    started as users start it hashes with argon2id at the library's full cost, whichever way
    the operator was made. (The seeded database's hashes are the fixture's, not a server's.)"""
    server = make_server()
    server.create_operator("admin", admin=True)  # by the setup API
    server.create_operator("bob")  # by an administrator over the API
    r = server.run_cli("create-operator", "carol", "--password-stdin", stdin="carol's horse 3\n")
    assert r.returncode == 0, r.stderr
    hashes = dict(server.rows("SELECT username, password_hash FROM operator"))
    assert set(hashes) == {"admin", "bob", "carol"}
    full_cost = argon2.PasswordHasher()
    for username, hashed in hashes.items():
        assert hashed.startswith("$argon2id$"), (username, hashed[:12])
        assert not full_cost.check_needs_rehash(hashed), (username, hashed)
    assert login(server, "carol", "carol's horse 3")[1].status_code == 200


def test_the_collector_is_off_while_starting_and_on_once_serving(tmp_path):
    """cutelive.py keeps the garbage collector off while the modules load and the server starts
    (it would walk the start-up objects again and again), and ``serve`` turns it on: a server
    left without it would never free reference cycles."""
    probe = """
import asyncio, gc, os, runpy, signal, sys
import livesupport.cli as cli

make_app = cli.make_app

async def probed(config):
    print("starting, collector on:", gc.isenabled(), flush=True)
    app = await make_app(config)

    def later():
        print("serving, collector on:", gc.isenabled(), flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    asyncio.get_running_loop().call_later(0.2, later)
    return app

cli.make_app = probed
script, data = sys.argv[1:]
sys.argv = [script, "serve", "--port", "0", "--data-dir", data]
runpy.run_path(script, run_name="__main__")
"""
    r = subprocess.run(
        [sys.executable, "-c", probe, str(ROOT / "cutelive.py"), str(tmp_path / "data")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "starting, collector on: False",
        "serving, collector on: True",
    ], (r.stdout, r.stderr)
