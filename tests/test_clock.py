"""The server's time when the system clock steps (an NTP correction, ``date -s``): order,
timeouts and expiries run on elapsed time, so a step backwards stops none of them.

The real server runs with a ``sitecustomize`` on its ``PYTHONPATH`` that sets Python's wall
clock (``time.time``) back one day once a flag file exists: the process sees exactly what it
would see after the system clock was set back, and nothing of ours is replaced."""

from __future__ import annotations

import datetime
import time

import requests
from conftest import wait_for

from livesupport.clock import Clock

SHIM = """
import os
import time

_wall = time.time
_flag = os.environ["CUTELIVE_TEST_CLOCK_FLAG"]


def _stepped() -> float:
    return _wall() - 86400 if os.path.exists(_flag) else _wall()


time.time = _stepped
"""


def test_a_wall_clock_step_backwards_stops_no_queue_timeout(make_server, tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SHIM)
    flag = tmp_path / "clock-set-back"
    server = make_server(
        {"chat": {"queue_timeout": "3s"}},
        env={"PYTHONPATH": str(shim), "CUTELIVE_TEST_CLOCK_FLAG": str(flag)},
    )
    ann = server.visitor()
    ws = ann.connect()
    chat = ann.start_chat("Is anybody there?")["chat"]
    flag.touch()  # the system clock is set back a day
    # The process sees it: its log lines from now on are stamped a day earlier.
    yesterday = (datetime.date.today() - datetime.timedelta(days=1)).isoformat()
    wait_for(
        lambda: (
            requests.get(server.url + "/api/no-such-path", timeout=10).status_code == 404
            and any(line.startswith(yesterday) for line in server.log_lines)
        ),
        what="a log line stamped a day earlier",
    )
    # The chat nobody took is still missed after queue_timeout, and its events stay in order
    # with timestamps that do not go back.
    missed = ws.wait(lambda e: e["type"] == "chat_missed", what="chat_missed")
    assert missed["chat_id"] == chat["id"]
    events = ann.http.get(f"{server.url}/api/visitor/chats/{chat['id']}", timeout=10).json()
    stamps = [e["ts"] for e in events["events"]]
    assert [e["seq"] for e in events["events"]] == [1, 2, 3] and stamps == sorted(stamps)
    assert stamps[-1] - stamps[0] >= 3000


def test_the_clock_counts_elapsed_time_whatever_the_wall_clock_does(monkeypatch):
    clock = Clock()
    start = clock.now_ms()
    real = time.time
    for step in (-86400, +86400):
        monkeypatch.setattr(time, "time", lambda step=step: real() + step)
        now = clock.now_ms()
        assert 0 <= now - start < 60_000, step  # still "now", not a day away
    monkeypatch.setattr(time, "time", real)
    assert abs(clock.now_ms() - real() * 1000) < 1000  # and it is the wall time of its start
