"""Smoke test of the installed product: also run against the built executable in CI.

``CUTELIVE_BIN=dist/cutelive python3 -m pytest tests/test_smoke.py tests/test_chat.py`` runs
these against the single-file build instead of ``cutelive.py``.
"""

import signal
import sqlite3
import subprocess

import requests
from conftest import SERVER_CMD, TIMEOUT


def test_starts_in_an_empty_directory_and_serves_everything(make_server):
    server = make_server()
    assert (server.data_dir / "cutelive.db").exists()
    for path, kind in [
        ("/console/", "text/html"),
        ("/widget.js", "javascript"),
        ("/demo/", "text/html"),
        ("/chat", "text/html"),
        ("/api/status", "application/json"),
    ]:
        r = requests.get(server.url + path, timeout=TIMEOUT)
        assert r.status_code == 200 and kind in r.headers["Content-Type"], (path, r.status_code)
    assert requests.get(server.url + "/api/status", timeout=TIMEOUT).json() == {"online": False}
    assert server.setup_token_from_log()


def test_sigterm_exits_zero_and_clients_are_told_to_come_back(server):
    ann = server.visitor()
    ws = ann.connect()
    chat_id = ann.start_chat("hello")["chat"]["id"]
    assert server.stop(signal.SIGTERM) == 0
    assert ws.wait_closed()[0] == 1001  # going away: reconnect
    db = sqlite3.connect(server.data_dir / "cutelive.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT last_seq FROM chat WHERE id = ?", (chat_id,)).fetchone()[0] == 2


def test_version():
    out = subprocess.run(SERVER_CMD + ["--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("cutelive ")


def test_backup_while_running(server, tmp_path):
    bob_ws, ann, chat_id = server.bob_answers_ann("backup me")
    for i in range(15):
        ann.say(chat_id, f"m{i}")
    dest = tmp_path / "copy.db"
    r = server.run_cli("backup", str(dest))
    assert r.returncode == 0, r.stderr
    copy = sqlite3.connect(dest)
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert (
        copy.execute("SELECT count(*) FROM event WHERE chat_id = ?", (chat_id,)).fetchone()[0] == 18
    )
    r = server.run_cli("backup", str(dest))
    assert r.returncode != 0 and "exists" in r.stderr
