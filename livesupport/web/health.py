"""Health and readiness, for proxies, load balancers and rolling upgrades.

``GET /api/health``: the process is alive and its event loop answers. ``GET /api/ready``: it
takes new work — not stopping, and its database answers a cheap query within
``Readiness.TIMEOUT``. Both answer loopback clients, and others with ``[server] health_token``
(the route table's ``health`` level).
"""

from __future__ import annotations

import asyncio
import os

from ..protocol import ApiError
from ..storage import Storage
from .base import BaseHandler


class Readiness:
    """Whether this process takes new work. ``serve`` calls ``stop_accepting`` when it is told
    to stop, before its drain; the database is asked by at most one query at a time, however
    many checks arrive while it is slow."""

    #: Seconds the database may take to answer before the process is reported not ready.
    TIMEOUT = 2.0

    def __init__(self, storage: Storage):
        self.storage = storage
        self.stopping = False
        self._probe: asyncio.Future | None = None

    def stop_accepting(self) -> None:
        self.stopping = True

    async def not_ready(self) -> str | None:
        """None when ready; otherwise why not, in a few words."""
        if self.stopping:
            return "shutting down"
        probe = self._probe
        if probe is None or probe.done():
            # A probe is never cancelled: a slow one goes on, and the next checks wait for it
            # rather than borrowing more of the database's connections.
            probe = self._probe = asyncio.ensure_future(self._ask())
        done, _ = await asyncio.wait({probe}, timeout=self.TIMEOUT)
        if not done:
            return f"the database did not answer within {self.TIMEOUT:g} s"
        return "shutting down" if self.stopping else probe.result()

    async def _ask(self) -> str | None:
        try:
            await self.storage.accounts.operator_count()
        except ApiError as e:  # storage_unavailable: the database server is out of reach
            return f"the database cannot be used: {e.code}"
        except Exception as e:
            return f"the database cannot be used: {e}"
        return None


class HealthHandler(BaseHandler):
    """GET /api/health: the process and its event loop answer."""

    def get(self) -> None:
        self.reply({"status": "ok", "pid": os.getpid()})


class ReadyHandler(BaseHandler):
    """GET /api/ready: 200 while the process takes new work, 503 with the reason otherwise."""

    async def get(self) -> None:
        reason = await self.application.readiness.not_ready()
        if reason is None:
            self.reply({"ready": True, "pid": os.getpid()})
        else:
            self.error = "not_ready"  # for the access log: said once, not once a check
            self.reply({"ready": False, "reason": reason, "pid": os.getpid()}, 503)
