"""Two server processes as one site: PostgreSQL and Redis between them (``backend == "cluster"``).

A ``Cluster`` is the ``Server`` that visitors talk to, with a second process, ``peer``, on the
same database and Redis, that consoles talk to: every test of the files in
``backends.BOTH_BACKENDS`` then has its visitor on one process and its operator on the other.
"""

from __future__ import annotations

import signal
from pathlib import Path

import requests
from conftest import TIMEOUT, Server


class Cluster(Server):
    def __init__(self, tmp: Path, config, env, database_url: str, redis_url: str):
        config = {**(config or {}), "cluster": {"redis_url": redis_url}}
        super().__init__(tmp, config, env, database_url=database_url)
        #: The process consoles talk to.
        self.peer = Server(self.tmp / "peer", config, env, database_url=database_url)

    @property
    def console_server(self) -> Server:
        return self.peer

    @property
    def console_url(self) -> str:
        return self.peer.url

    def peer_get(self, path: str) -> dict:
        """A public JSON resource as the second process serves it."""
        return requests.get(self.peer.url + path, timeout=TIMEOUT).json()

    def start(self, port: int | None = None) -> Cluster:
        peer_port = self.peer.port if port is not None else None
        super().start(port)
        self.peer.start(peer_port)
        return self

    def stop(self, sig=signal.SIGTERM) -> int | None:
        rc = super().stop(sig)
        self.peer.stop(sig)
        return rc

    def kill(self) -> None:
        super().kill()
        self.peer.kill()

    def restart(self) -> Cluster:
        port = self.port
        self.stop()
        return self.start(port)
