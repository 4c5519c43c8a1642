"""What every handler shares: the client's address, origins, JSON bodies, one error format,
and authentication by the level the route table names."""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Any

import tornado.web

from ..config import split_url
from ..protocol import MAX_UA_CHARS, ApiError, Party, encode
from ..services import Services

SESSION_COOKIE = "cutelive_session"

#: Authentication levels a route may name (per route, or per method).
AUTH_LEVELS = {
    "public": "anyone, from any site; read-only",
    "local": "loopback clients only (monitoring)",
    "health": "loopback clients, or any with [server] health_token (Authorization: Bearer); "
    "no rate limit for them",
    "visitor_origin": "the visitor API without a token yet (a new token; a beacon carries "
    "its token in the body); origin allow-list",
    "visitor": "a visitor token (Authorization: Bearer, or the WebSocket's hello); origin "
    "allow-list",
    "console": "the console's own pages: a session cookie if there is one, CSRF on changes",
    "operator": "a logged-in operator (session cookie, CSRF token on changes)",
    "admin": "a logged-in administrator",
    "signed": "a URL the server signed (a file's expiring link); no other authentication",
    "static": "browser files",
    "page": "our HTML pages (console, chat window), with their Content-Security-Policy",
    "none": "no such route: a JSON 404",
}

#: Levels whose routes take no cookie, so no CSRF token either.
NO_CSRF = ("public", "local", "health", "visitor", "visitor_origin", "signed", "none")

#: Error codes for the HTTP statuses Tornado raises by itself.
HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


def client_ip(request: Any, trusted_proxies: list[str]) -> str:
    """The client's address; ``X-Forwarded-For`` counts only from a trusted proxy."""
    ip = request.remote_ip or ""
    if trusted_proxies and ip in trusted_proxies:
        fwd = request.headers.get("X-Forwarded-For", "")
        for hop in reversed([h.strip() for h in fwd.split(",") if h.strip()]):
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                break
            ip = hop
            if hop not in trusted_proxies:
                break
    return ip


def handler_ip(handler: Any) -> str:
    """A handler's client address (worked out once per request)."""
    if not hasattr(handler, "_client_ip"):
        config = handler.services.config
        handler._client_ip = client_ip(handler.request, config.server_trusted_proxies)
    return handler._client_ip


def request_user_agent(request: Any) -> str:
    return request.headers.get("User-Agent", "")[:MAX_UA_CHARS]


def handler_user_agent(handler: Any) -> str:
    return request_user_agent(handler.request)


def is_own_origin(request: Any, services: Services, origin: str) -> bool:
    """The server's own origin, scheme and all: as the request reached it, or its
    ``public_url`` (behind a proxy that terminates TLS)."""
    origin = origin.lower().rstrip("/")
    if origin == f"{request.protocol}://{request.host}".lower():
        return True
    pub = split_url(services.config.server_public_url.lower())
    return pub is not None and bool(pub.netloc) and origin == f"{pub.scheme}://{pub.netloc}"


def visitor_origin_allowed(request: Any, services: Services) -> bool:
    """The visitor API answers the customer's sites: any, unless an allow-list is set."""
    origin = request.headers.get("Origin")
    allowed = services.site.allowed_origins()
    if not origin or not allowed or is_own_origin(request, services, origin):
        return True
    return origin.lower().rstrip("/") in allowed


def origin_refused() -> ApiError:
    return ApiError("origin_not_allowed", "this site is not in [widget] allowed_origins", 403)


def parse_json(data: bytes | str) -> Any:
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError("invalid_utf8", "the body is not valid UTF-8") from None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise ApiError("bad_json", "the body is not valid JSON") from None


def path_id(text: str) -> int:
    """A positive id from the path; anything else is a 404 like a missing id."""
    n = int(text) if text.isascii() and text.isdigit() and len(text) < 18 else 0
    if n <= 0:
        raise ApiError("not_found", "no such id", 404)
    return n


def csrf_failed() -> ApiError:
    return ApiError(
        "csrf_failed",
        "missing or wrong X-XSRFToken header; get one from GET /api/console/session",
        403,
    )


def body_too_large(size: str, limit: int) -> ApiError:
    return ApiError(
        "body_too_large",
        f"the body is {size} bytes; limit max_body is {limit}",
        413,
        limit="max_body",
    )


class BaseHandler(tornado.web.RequestHandler):
    """JSON API handler: one error format, the route's authentication, the limits.

    ``auth`` comes from the route table: a level of ``AUTH_LEVELS``, or one per method.
    """

    services: Services
    party: Party | None = None
    #: The error code the request was answered with, if any (for the access log).
    error: str | None = None

    def initialize(self, services: Services, auth: str | dict[str, str] = "public") -> None:
        self.services = services
        self._auth = auth
        # Tornado set the default headers before the services were given: add what needs them.
        self._cors_headers()

    @property
    def auth(self) -> str:
        """This request's authentication level."""
        if isinstance(self._auth, dict):
            return self._auth.get(self.request.method, "operator")
        return self._auth

    ip = property(handler_ip)
    user_agent = property(handler_user_agent)

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        if hasattr(self, "services"):  # not yet when Tornado first calls this, before initialize()
            self._cors_headers()

    def _cors_headers(self) -> None:
        if self._auth == "public":
            self.set_header("Access-Control-Allow-Origin", "*")
        elif self._auth in ("visitor", "visitor_origin"):
            origin = self.request.headers.get("Origin")
            if origin and visitor_origin_allowed(self.request, self.services):
                self.set_header("Access-Control-Allow-Origin", origin)
                self.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
                self.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
                self.set_header("Access-Control-Max-Age", "600")
            self.set_header("Vary", "Origin")

    async def prepare(self) -> None:
        auth = self.auth
        if auth in ("visitor", "visitor_origin"):
            if not visitor_origin_allowed(self.request, self.services):
                raise origin_refused()
        health = self.health_access() if auth == "health" else None
        if health != 200:  # a proxy's checks are not limited like the clients it relays
            self.services.check_request(self.ip)
        method = self.request.method.lower()
        served = getattr(type(self), method, None) is not getattr(
            tornado.web.RequestHandler, method, None
        )
        if not served or (method == "options" and auth not in ("visitor", "visitor_origin")):
            raise tornado.web.HTTPError(405)  # before authentication, as for a missing route
        if (auth == "local" and not self.from_loopback()) or health == 404:
            raise ApiError("not_found", "no such path", 404)
        if health == 403:
            raise ApiError("forbidden", "wrong health token", 403)
        if auth == "visitor" and self.request.method != "OPTIONS":
            header = self.request.headers.get("Authorization", "")
            token = header[7:] if header[:7].lower() == "bearer " else ""
            self.party = await self.services.accounts.visitor_party(token, self.ip, self.user_agent)
        elif auth in ("console", "operator", "admin"):
            self.party = await self.services.accounts.operator_party(
                self.get_cookie(SESSION_COOKIE), self.ip, self.user_agent
            )
            if auth != "console" and self.party is None:
                raise ApiError("not_authenticated", "log in first", 401)
            if auth == "admin":
                op = await self.services.storage.accounts.operator(self.party.operator_id)
                if not op.is_admin:
                    raise ApiError("forbidden", "only administrators may do this", 403)

    def from_loopback(self) -> bool:
        """A loopback client that no proxy relayed (``self.ip`` honours trusted proxies)."""
        headers = self.request.headers
        relayed = "X-Forwarded-For" in headers or "X-Real-Ip" in headers
        return not relayed and ipaddress.ip_address(self.ip or "0.0.0.0").is_loopback

    def health_access(self) -> int:
        """The ``health`` level: 200 for a loopback client or the right token, 403 for a
        wrong token, 404 (no such path) for anyone else."""
        if self.from_loopback():
            return 200
        token = self.services.config.server_health_token
        header = self.request.headers.get("Authorization", "")
        if not token or not header:
            return 404
        given = header[7:] if header[:7].lower() == "bearer " else ""
        return 200 if hmac.compare_digest(given.encode(), token.encode()) else 403

    def check_xsrf_cookie(self) -> None:
        # Only the console uses cookies; its routes check the token, the others need none.
        if self._auth in NO_CSRF:
            return
        try:
            super().check_xsrf_cookie()
        except tornado.web.HTTPError:
            raise csrf_failed() from None

    def options(self, *args: Any) -> None:
        """CORS preflight of the visitor API."""
        if self._auth not in ("visitor", "visitor_origin"):
            raise tornado.web.HTTPError(405)
        self.set_status(204)
        self.finish()

    def body_json(self, allow_empty: bool = False) -> Any:
        limit = self.services.config.limits_max_body
        body = self.request.body
        if len(body) > limit:
            raise body_too_large(str(len(body)), limit)
        if allow_empty and not body.strip():
            return {}
        return parse_json(body)

    def reply(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(encode(obj))

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, ApiError):
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            err = exc
        elif isinstance(exc, tornado.web.HTTPError) and exc.status_code < 500:
            err = ApiError(
                HTTP_CODES.get(exc.status_code, "bad_request"),
                exc.log_message or self._reason,
                exc.status_code,
            )
        else:
            err = ApiError("server_error", "internal error; it has been logged", 500)
        self.answer_error(err)

    def answer_error(self, err: ApiError) -> None:
        """Finish with ``err``: its status and JSON, and ``Retry-After`` when it says when."""
        self.set_header("Content-Type", "application/json; charset=utf-8")
        if "retry_after" in err.extra:  # 429 rate_limited, 503 storage_full
            self.set_header("Retry-After", str(int(err.extra["retry_after"]) + 1))
        self.set_status(err.status)
        self.error = err.code
        self.finish(encode(err.event()))

    def set_session_cookie(self, token: str) -> None:
        self.set_cookie(
            SESSION_COOKIE,
            token,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.request.protocol == "https",
            expires_days=self.services.config.operators_session_lifetime / 86400,
        )
