"""Invitations to chat: sent by an operator from the monitor, or by an automatic rule.

An invitation lives on the visitor's monitor entry; it is pending until the visitor accepts,
declines, starts a chat of its own ("superseded"), leaves, or it expires.
"""

from __future__ import annotations

import secrets
from typing import Any

from .context import Context
from .guards import RateLimiter
from .monitor import LiveVisitor, Monitor
from .presence import Presence
from .protocol import OPEN_STATUSES, ApiError, invalid_field, not_found, operator_ref
from .storage.records import InviteRule


def rule_matches(rule: InviteRule, lv: LiveVisitor, t: int) -> bool:
    """Whether a visit meets every condition of a rule at time ``t`` (ms)."""
    c = rule.conditions
    if "url_contains" in c and c["url_contains"].lower() not in lv.url.lower():
        return False
    if "referrer_contains" in c and c["referrer_contains"].lower() not in lv.referrer.lower():
        return False
    if "min_pages" in c and lv.pages < c["min_pages"]:
        return False
    if "min_time_on_page" in c and t - lv.page_since < c["min_time_on_page"] * 1000:
        return False
    if "min_time_on_site" in c and t - lv.started_at < c["min_time_on_site"] * 1000:
        return False
    if "returning" in c and (lv.visit_number > 1) != c["returning"]:
        return False
    return True


class Invitations:
    def __init__(self, ctx: Context, monitor: Monitor, presence: Presence):
        config, clock = ctx.config, ctx.clock
        self.config, self.storage, self.hub, self.clock = config, ctx.storage, ctx.hub, clock
        self.monitor = monitor
        self.presence = presence
        self.validate = ctx.validate
        self.rl_invites = RateLimiter(
            "invitations_per_operator", config.monitor_invitations_per_operator, clock
        )
        self._rules: list[InviteRule] | None = None
        #: Visitors with a pending invitation (checked for expiry every second).
        self._pending: set[int] = set()

    # -- invitations --------------------------------------------------------------------------

    async def invite(self, operator_id: int | None, visitor_id: int, message: str) -> dict:
        """Invite a visitor on the site; inviting twice returns the pending invitation. (In a
        cluster, a visitor on another process is invited by that process.)"""
        lv = self.monitor.live.get(visitor_id)
        origin = self.monitor.origin_of(visitor_id) if lv is None else None
        if origin is not None:
            data = {"operator_id": operator_id, "visitor_id": visitor_id, "message": message}
            return await self.hub.call(origin, "invite", data)
        if lv is None or lv.left_at is not None:
            raise ApiError(
                "visitor_left",
                f"visitor {visitor_id} is not on the site",
                409,
                visitor_id=visitor_id,
            )
        if lv.chat_status in OPEN_STATUSES:
            raise ApiError(
                "visitor_chatting",
                f"visitor {visitor_id} is already in a chat",
                409,
                visitor_id=visitor_id,
                chat_id=lv.chat_id,
            )
        inv = lv.invitation
        if inv and inv["state"] == "pending":
            return inv  # inviting twice does not make a second invitation
        who = None
        if operator_id is not None:
            self.rl_invites.check(operator_id, "invitations")
            op = await self.storage.accounts.operator(operator_id)
            who = operator_ref(op.id, op.display_name)
        t = self.clock.now_ms()
        inv = {
            "id": secrets.token_urlsafe(9),
            "state": "pending",
            "operator": who,
            "message": message,
            "created_at": t,
            "expires_at": t + int(self.config.monitor_invitation_ttl * 1000),
        }
        lv.invitation = inv
        self._pending.add(visitor_id)
        self.hub.publish([f"v:{visitor_id}"], self.invitation_event(inv))
        self.monitor.touch(visitor_id)
        return inv

    def invitation_event(self, inv: dict) -> dict:
        left = max(0, (inv["expires_at"] - self.clock.now_ms()) / 1000)
        return {
            "type": "invitation",
            "id": inv["id"],
            "operator": inv["operator"],
            "message": inv["message"],
            "expires_in": round(left, 1),
        }

    def pending(self, visitor_id: int) -> dict | None:
        lv = self.monitor.live.get(visitor_id)
        return lv.pending_invitation(self.clock.now_ms()) if lv else None

    def answer(self, visitor_id: int, invitation_id: str, accept: bool) -> dict:
        inv = self.pending(visitor_id)
        if inv is None or inv["id"] != invitation_id:
            raise not_found("no such invitation, or it expired")
        self._end(visitor_id, inv, "accepted" if accept else "declined")
        return inv

    def chat_started(self, visitor_id: int) -> None:
        """A chat the visitor started itself ends any pending invitation ("superseded")."""
        inv = self.pending(visitor_id)
        if inv is not None:
            self._end(visitor_id, inv, "superseded")

    def _end(self, visitor_id: int, inv: dict, state: str) -> None:
        inv["state"] = state
        self._pending.discard(visitor_id)
        self.hub.publish(
            [f"v:{visitor_id}"], {"type": "invitation_answered", "id": inv["id"], "state": state}
        )
        self.monitor.touch(visitor_id)

    # -- periodic and automatic ---------------------------------------------------------------

    async def tick(self) -> None:
        """Every second: expire invitations, and let the rules invite who now qualifies."""
        t = self.clock.now_ms()
        for vid in list(self._pending):
            lv = self.monitor.live.get(vid)
            inv = lv.invitation if lv else None
            if inv is None or inv["state"] != "pending":
                self._pending.discard(vid)
            elif t >= inv["expires_at"]:
                inv["state"] = "expired"
                self._pending.discard(vid)
                self.hub.publish([f"v:{vid}"], {"type": "invitation_expired", "id": inv["id"]})
                self.monitor.touch(vid)
        rules = await self.active_rules()
        if rules:
            # One pass without copying the table (see Monitor.tick); invitations go out after.
            due = [
                (lv, rule)
                for lv in self.monitor.live.values()
                if (rule := self._rule_for(lv, rules, t)) is not None
            ]
            for lv, rule in due:
                lv.auto_invited = True
                await self.invite(None, lv.visitor_id, rule.message)

    async def page_viewed(self, lv: LiveVisitor) -> None:
        if not self.presence.any_online():
            return  # (the usual page view has nobody to answer an invitation, or no rule)
        rules = await self.active_rules()
        rule = self._rule_for(lv, rules, self.clock.now_ms()) if rules else None
        if rule is not None:
            lv.auto_invited = True
            await self.invite(None, lv.visitor_id, rule.message)

    async def active_rules(self) -> list[InviteRule]:
        """The enabled rules, while someone is online to answer."""
        if not self.presence.any_online():
            return []
        if self._rules is None:
            self._rules = await self.storage.traffic.rules(enabled_only=True)
        return self._rules

    @staticmethod
    def _rule_for(lv: LiveVisitor, rules: list[InviteRule], t: int) -> InviteRule | None:
        """The first rule that invites this visitor now, if it may be invited at all."""
        if lv.auto_invited or lv.chat_status or lv.left_at is not None:
            return None
        if lv.invitation and lv.invitation["state"] == "pending":
            return None
        return next((rule for rule in rules if rule_matches(rule, lv, t)), None)

    # -- rules --------------------------------------------------------------------------------

    async def rules(self) -> list[InviteRule]:
        return await self.storage.traffic.rules()

    async def save_rule(self, body: Any, rule_id: int | None = None) -> InviteRule:
        """Create or change an automatic invitation rule from a console request body."""
        args = self.validate.request("new_rule" if rule_id is None else "rule_changes", body)
        if "message" in args and not args["message"].strip():
            raise invalid_field("message", "'message' must not be empty")
        traffic = self.storage.traffic
        if rule_id is None:
            rule = await traffic.create_rule(
                args["name"], args["message"], args.get("enabled", True), args["conditions"]
            )
        else:
            rule = await traffic.update_rule(rule_id, **args)
            if rule is None:
                raise not_found(f"no rule {rule_id}")
        self._rules = None
        return rule

    async def delete_rule(self, rule_id: int) -> None:
        if not await self.storage.traffic.delete_rule(rule_id):
            raise not_found(f"no rule {rule_id}")
        self._rules = None
