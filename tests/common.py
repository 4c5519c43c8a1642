"""What every test module shares: where the project is, how long a wait may take, the
operators' password, a real browser's user agent, and waiting for a condition."""

from __future__ import annotations

import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 20.0  # s: generous for a loaded CI machine; every wait returns as soon as it holds
#: The password of every operator a test creates, unless it says otherwise.
PASSWORD = "correct horse 1"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


def with_generous_limits(config: dict | None) -> dict[str, dict[str, str]]:
    """A test's configuration over generous per-address limits: every test client comes
    from 127.0.0.1."""
    base = {
        "limits": {
            "requests_per_ip": "100000/1m",
            "chats_per_ip": "10000/1m",
            "sockets_per_ip": "1000",
        },
        "operators": {"login_failures_per_ip": "1000/15m"},
    }
    for section, values in (config or {}).items():
        base.setdefault(section, {}).update(values)
    return base


def upload(client, chat_id: int, data, name="f.bin", client_id="u1", role="visitor", **kw):
    """``data`` posted as a file to the chat by ``client`` (a visitor, or with ``role``
    "console" an operator); the response."""
    return client.http.post(
        f"{client.server.url}/api/{role}/chats/{chat_id}/files",
        params={"name": name, "client_id": client_id},
        data=data,
        timeout=TIMEOUT,
        **kw,
    )


def wait_for(predicate, timeout=TIMEOUT, interval=0.02, what="condition"):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
