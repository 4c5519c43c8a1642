"""Settings the administrators edit in the console: the widget's appearance and the extra
sites allowed to embed it; and the public widget configuration built from them."""

from __future__ import annotations

import copy
from typing import Any

from .config import parse_origins
from .context import Context
from .departments import Departments
from .hub import Signal
from .presence import Presence
from .protocol import (
    APPEARANCE,
    INVITATION_TEXT,
    MAX_ALLOWED_ORIGINS,
    ApiError,
    check_appearance,
    files_limits,
    invalid_field,
    widget_limits,
)


class Site:
    """Console-edited settings, cached in memory and stored as one document."""

    def __init__(self, ctx: Context, presence: Presence, departments: Departments):
        self.config, self.hub = ctx.config, ctx.hub
        self.store = ctx.storage.site
        self.presence = presence
        self.departments = departments
        self.base_url = ctx.config.base_url()
        self._settings: dict = {"appearance": {}, "allowed_origins": []}
        #: ``saved()``: an administrator changed the settings (other processes reload them).
        self.saved = Signal("saved")

    async def start(self) -> None:
        stored = await self.store.settings()
        self._settings = {
            "appearance": stored.get("appearance", {}),
            "allowed_origins": stored.get("allowed_origins", []),
        }

    @property
    def appearance(self) -> dict[str, str]:
        """What administrators set; keys left at their default are absent."""
        return self._settings["appearance"]

    def look(self, key: str) -> str:
        """One appearance value: what an administrator set, or its default."""
        return self.appearance.get(key) or APPEARANCE[key][2]

    def check_prechat(self, form: dict) -> None:
        """The pre-chat form as Widget settings ask for it: each field required, optional or
        not asked (what was not asked is not stored)."""
        for key in ("name", "email"):
            ask = self.look(f"ask_{key}")
            if ask == "hidden":
                form[key] = ""
            elif ask == "required" and not form.get(key, "").strip():
                raise invalid_field(key, f"'{key}' is required")

    def allowed_origins(self) -> list[str]:
        """Origins allowed to use the visitor API: the ini's and the console's; empty: any."""
        return list(self.config.widget_allowed_origins) + self._settings["allowed_origins"]

    def widget_config(self) -> dict:
        return {
            "online": self.presence.any_online(),
            "heartbeat": self.config.realtime_heartbeat,
            "appearance": dict(self.appearance),
            "defaults": {k: default for k, (_kind, _limit, default) in APPEARANCE.items()},
            "invitation_text": INVITATION_TEXT,
            "limits": widget_limits(self.config),
            # E-mail can be sent: the widget offers the reply by e-mail and the transcript.
            "mail": self.config.mail_enabled,
            # Public anyway (browsers see them refused); the pop-out window checks its opener.
            "origins": self.allowed_origins(),
            "departments": self.departments.for_visitors(),
            # The widget sends what is typed with ``typing`` only when the site chose to.
            "typing_preview": self.config.chat_typing_preview,
            "files": files_limits(self.config),
        }

    def settings_view(self) -> dict:
        return {
            "appearance": dict(self.appearance),
            "appearance_keys": list(APPEARANCE),
            "allowed_origins": list(self._settings["allowed_origins"]),
            "allowed_origins_config": list(self.config.widget_allowed_origins),
            "public_url": self.base_url,
        }

    async def update(self, body: Any) -> dict:
        """Change settings from a console request body; visitors get the new appearance."""
        if not isinstance(body, dict):
            raise ApiError("bad_json", "expected a JSON object")
        for k in body:
            if k not in ("appearance", "allowed_origins"):
                raise ApiError("unknown_field", f"'{k}' is not a setting", field=k)
        new = copy.deepcopy(self._settings)
        if "appearance" in body:
            new["appearance"] = _appearance(new["appearance"], body["appearance"])
        if "allowed_origins" in body:
            new["allowed_origins"] = _origins(body["allowed_origins"])
        await self.store.save_settings(new)
        self._settings = new
        await self.saved.emit()
        self.hub.publish(["visitors"], {"type": "appearance", "appearance": new["appearance"]})
        return self.settings_view()


def _appearance(current: dict, changes: Any) -> dict:
    if not isinstance(changes, dict):
        raise invalid_field("appearance", "'appearance' must be an object")
    out = dict(current)
    for k, v in changes.items():
        if k not in APPEARANCE:
            raise ApiError(
                "unknown_field", f"'{k}' is not an appearance setting", field=f"appearance.{k}"
            )
        v = check_appearance(k, v)
        if v:
            out[k] = v
        else:
            out.pop(k, None)
    return out


def _origins(origins: Any) -> list[str]:
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise invalid_field("allowed_origins", "'allowed_origins' must be a list of strings")
    if len(origins) > MAX_ALLOWED_ORIGINS:
        raise ApiError(
            "too_long",
            f"at most {MAX_ALLOWED_ORIGINS} allowed origins",
            field="allowed_origins",
            limit=MAX_ALLOWED_ORIGINS,
        )
    try:
        return parse_origins(" ".join(origins))
    except ValueError as e:
        raise invalid_field("allowed_origins", f"'allowed_origins': expected {e}") from None
