"""Which operators are present, with what status, and whether anyone is online for visitors.

An operator is present while it has a stream, and during ``[operators] offline_grace`` after
its last one closed (a page reload, a network blip). Presence is ephemeral: only the status an
operator chose is stored.

In a cluster each process knows its own operators (``local``) and shares them through the hub
(``RedisHub.share``); ``present`` is the union. An operator is gone when no process has it:
the process whose grace ended says so, and when a whole process vanishes (``kill -9``), the
process holding the lease gives its operators a grace of their own (``vanished``).
"""

from __future__ import annotations

from typing import Any

from .context import Context
from .hub import Signal
from .protocol import HAND_OVER, OFFLINE, ONLINE


class Presence:
    """Present operators and their grace timers.

    Publishes ``operators`` to consoles and ``availability`` to visitors when they change;
    announces ``went_offline(operator_id, chats)`` when an operator is gone (its chats are
    handed over or kept, see ``Handover.operator_left``).
    """

    def __init__(self, ctx: Context):
        self.config, self.hub, self.clock = ctx.config, ctx.hub, ctx.clock
        self.accounts = ctx.storage.accounts
        #: Operators present on this process and the status each chose.
        self.local: dict[int, str] = {}
        self._grace: dict[int, Any] = {}
        #: The cluster's other processes share theirs (None: one process).
        self._cluster = getattr(self.hub, "share", None) is not None
        self._others: dict[int, str] = {}
        #: Operators whose process vanished (``kill -9``), with their last status: still
        #: present until the process holding the lease adopts them (``adopt_orphans``).
        self.orphans: dict[int, str] = {}
        self.went_offline = Signal("went_offline")
        #: ``status_set(operator_id, status)``: an operator chose a status.
        self.status_set = Signal("status_set")
        #: ``roster_changed()``: who is present, or their status, changed.
        self.roster_changed = Signal("roster_changed")

    @property
    def present(self) -> dict[int, str]:
        """Present operators and the status each chose, on any process."""
        if not self._others and not self.orphans:
            return self.local
        merged = dict(self.orphans)
        merged.update(self._others)
        merged.update(self.local)
        return merged

    # -- the cluster --------------------------------------------------------------------------

    def share(self) -> None:
        """Tell the other processes who is present here (on each change and every second)."""
        if self._cluster:
            self.hub.share("presence", {str(k): v for k, v in self.local.items()})

    def others_changed(self) -> None:
        """Recompute the union from what the other processes share. The process where a
        change happened has told consoles and visitors already. Operators no process shares
        any more without having let them go (their process died) become ``orphans``."""
        if not self._cluster:
            return
        others: dict[int, str] = {}
        for part in self.hub.shared("presence").values():
            for k, status in part.items():
                if others.get(int(k), OFFLINE) == OFFLINE:
                    others[int(k)] = status
        for op_id in set(self._others) - set(others) - set(self.local):
            self.orphans[op_id] = self._others[op_id]
        for op_id in set(others) | set(self.local):
            self.orphans.pop(op_id, None)
        self._others = others

    def adopt_orphans(self) -> None:
        """(On the process holding the lease.) Orphans are present here for one grace period
        (time to reconnect to another process), then gone: their chats are handed over."""
        for op_id, status in self.orphans.items():
            self.local[op_id] = status
            self._start_grace(op_id)
        if self.orphans:
            self.orphans = {}
            self.share()

    async def restore(self, operator_ids: set[int]) -> None:
        """After a restart: operators with open chats count as present for one grace period,
        so that their chats wait for them to reconnect."""
        for op_id in operator_ids:
            if op_id not in self.present:
                op = await self.accounts.operator(op_id)
                self.local[op_id] = op.status if op else OFFLINE
                self._start_grace(op_id)
        self.share()

    def status_of(self, operator_id: int) -> str:
        return self.present.get(operator_id, OFFLINE)

    def any_online(self) -> bool:
        return any(s == ONLINE for s in self.present.values())

    async def operators_event(self) -> dict:
        ops = []
        for op_id, status in sorted(self.present.items()):
            op = await self.accounts.operator(op_id)
            if op is not None and status != OFFLINE:
                ops.append({"id": op.id, "display_name": op.display_name, "status": status})
        return {"type": "operators", "operators": ops}

    async def changed(self) -> None:
        """Tell consoles who is present; visitors learn availability from ``roster_changed``
        (``Departments.publish_availability``)."""
        self.share()
        self.hub.publish(["ops"], await self.operators_event())
        await self.roster_changed.emit()

    # -- streams and status -------------------------------------------------------------------

    async def stream_opened(self, operator_id: int) -> None:
        self._cancel_grace(operator_id)
        if operator_id not in self.local:
            op = await self.accounts.operator(operator_id)
            known = operator_id in self.present
            self.local[operator_id] = op.status
            if known:
                self.share()  # present elsewhere already: nothing changes for anyone
            else:
                await self.changed()

    def stream_closed(self, operator_id: int) -> None:
        if self.hub.count(f"op:{operator_id}") == 0 and operator_id in self.local:
            self._start_grace(operator_id)

    async def set_status(self, operator_id: int, status: str, chats: str = HAND_OVER) -> None:
        """``chats``: what becomes of the operator's open chats when it goes offline."""
        await self.accounts.update_operator(operator_id, status=status)
        self.local[operator_id] = status
        await self.status_set.emit(operator_id, status)
        if status == OFFLINE:
            await self.went_offline.emit(operator_id, chats)
        elif self.hub.count(f"op:{operator_id}") == 0 and operator_id not in self._grace:
            # Set over plain HTTP with no stream open: present only for the grace period.
            self._start_grace(operator_id)
        await self.changed()

    async def gone(self, operator_id: int) -> None:
        """The operator is offline: drop its presence and announce it."""
        self._cancel_grace(operator_id)
        self.local.pop(operator_id, None)
        self._others.pop(operator_id, None)
        self.orphans.pop(operator_id, None)
        await self.went_offline.emit(operator_id, HAND_OVER)
        await self.changed()

    # -- grace --------------------------------------------------------------------------------

    def _start_grace(self, operator_id: int) -> None:
        self._cancel_grace(operator_id)
        self._grace[operator_id] = self.clock.call_later(
            self.config.operators_offline_grace, lambda: self._grace_over(operator_id)
        )

    def _cancel_grace(self, operator_id: int) -> None:
        h = self._grace.pop(operator_id, None)
        if h is not None:
            h.cancel()

    def _grace_over(self, operator_id: int) -> None:
        self._grace.pop(operator_id, None)
        self.clock.spawn(self._gone_if_still_away(operator_id))

    async def _gone_if_still_away(self, operator_id: int) -> None:
        # Checked when this runs, not when the timer fired: a console may have reconnected
        # (and a new grace started) in between.
        if self.hub.count(f"op:{operator_id}") == 0 and operator_id not in self._grace:
            if operator_id in self._others:
                # Still present on another process: only this process lets go.
                self.local.pop(operator_id, None)
                self.share()
                return
            await self.gone(operator_id)
