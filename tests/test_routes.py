"""The route table: every route names its authentication, and the server keeps to it."""

from __future__ import annotations

import requests
from conftest import TIMEOUT
from tornado.websocket import WebSocketHandler

from livesupport.web.app import ROUTES
from livesupport.web.base import AUTH_LEVELS


def test_every_route_names_a_known_authentication_level():
    assert ROUTES
    for route in ROUTES:
        assert route.levels() <= set(AUTH_LEVELS), route
        assert route.levels(), route
    api = [r for r in ROUTES if r.pattern.startswith("/api/console/")]
    assert all(r.levels() & {"console", "operator", "admin"} for r in api)


def test_only_the_visitor_api_answers_cors_preflights(server):
    """OPTIONS is the visitor API's CORS preflight; anywhere else it is 405, before any
    authentication (no session is needed to learn that)."""
    for route in ROUTES:
        if not route.pattern.startswith("/api/") or route.pattern == "/api/.*":
            continue
        url = server.url + route.pattern.replace("([^/]+)", "2")
        r = requests.options(url, headers={"Origin": "https://shop.example"}, timeout=TIMEOUT)
        is_socket = issubclass(route.handler, WebSocketHandler)
        if route.levels() & {"visitor", "visitor_origin"} and not is_socket:
            assert r.status_code == 204, (route.pattern, r.status_code, r.text)
            assert r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
        else:
            assert r.status_code == 405, (route.pattern, r.status_code, r.text)
            assert r.json()["error"] == "method_not_allowed", route.pattern
