"""What the monitor learns about a visit beyond the beacon: browser, OS and device from the
user agent, the country from the address, and the search terms in a search engine's referrer."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from .config import ConfigError, split_url

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


SEARCH_ENGINES = {
    "google.": "q",
    "bing.com": "q",
    "duckduckgo.com": "q",
    "yahoo.": "p",
    "yandex.": "text",
    "baidu.com": "wd",
    "ecosia.org": "q",
    "startpage.com": "query",
    "qwant.com": "q",
    "search.brave.com": "q",
}


def search_terms(referrer: str) -> str:
    """The search keywords in a search engine's referrer URL, where the engine still sends them."""
    u = split_url(referrer)
    if u is None:
        return ""
    host = (u.hostname or "").lower()
    for engine, param in SEARCH_ENGINES.items():
        if engine in host:
            values = urllib.parse.parse_qs(u.query).get(param)
            return values[0][:200] if values else ""
    return ""


def clip(value: Any, limit: int) -> str | None:
    """Tracking fields are truncated, not refused: a long title is still a page view.
    None for text that is not valid Unicode (a lone surrogate), which the caller refuses."""
    if not isinstance(value, str):
        return ""
    if value.isprintable():  # the usual case: no control character, no lone surrogate
        return value.strip()[:limit]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return _CONTROL.sub(" ", value).strip()[:limit]


class UserAgents:
    """Browser, OS and device from a user agent, by the ua-parser library, cached."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[str, str, str]] = {}

    def parse(self, ua: str) -> tuple[str, str, str]:
        hit = self._cache.get(ua)
        if hit is not None:
            return hit
        try:
            from ua_parser import parse  # loads its rules on first use (~0.1 s)

            r = parse(ua)
        except Exception:  # a library failure must not lose the page view
            return ("", "", "")

        def ver(x) -> str:
            return ".".join(p for p in (x.major, x.minor) if p) if x else ""

        browser = f"{r.user_agent.family} {ver(r.user_agent)}".strip() if r.user_agent else ""
        os_ = f"{r.os.family} {ver(r.os)}".strip() if r.os else ""
        if r.device and r.device.family not in ("Other", "Spider"):
            device = r.device.family
        elif r.device and r.device.family == "Spider":
            device = "Bot"
        else:
            device = "Mobile" if "Mobi" in ua else "Desktop"
        out = (browser[:60], os_[:60], device[:60])
        if len(self._cache) > 5000:
            self._cache.clear()
        self._cache[ua] = out
        return out


class GeoIP:
    """Country by IP address from a GeoLite2-style .mmdb file, when one is configured."""

    def __init__(self, path: str):
        self.reader = None
        if path:
            import maxminddb

            try:
                self.reader = maxminddb.open_database(path)
            except (OSError, ValueError) as e:
                raise ConfigError(f"[monitor] geoip_db: cannot read {path}: {e}") from None

    def country(self, ip: str) -> str:
        if self.reader is None or not ip:
            return ""
        try:
            rec = self.reader.get(ip)
        except ValueError:
            return ""
        if not isinstance(rec, dict):
            return ""
        c = rec.get("country") or rec.get("registered_country") or {}
        names = c.get("names") or {}
        return str(names.get("en") or c.get("iso_code") or "")[:60]
