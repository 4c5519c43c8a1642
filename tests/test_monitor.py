"""The live traffic monitor: page views, tabs, the trail, visits that end and come back, and
where visitors are from. The rules in-process; the beacon over HTTP (its CORS answer, what it
refuses, and the same answers from the connection's fast path as from its handler) and a visit
that survives a real restart against the server."""

from __future__ import annotations

import json

import requests
from common import CHROME
from conftest import TIMEOUT, row_of, track, wait_for

from livesupport.monitor import Monitor

#: Consoles get monitor changes coalesced: a change reaches them this long after it.
COALESCE = Monitor.COALESCE


def test_page_views_tabs_and_trail(app):
    bob = app.operator("bob")
    bob.connect()
    ann = app.visitor()
    ann.track("https://shop.example/", "Home", "https://www.bing.com/search?q=blue+shoes")
    tab1 = ann.connect()
    tab2 = ann.connect()  # a second tab of the same browser
    ann.track("https://shop.example/pricing", "Pricing")
    app.advance(COALESCE)
    row = row_of(bob.stream.events, ann.id)
    assert row["tabs"] == 2 and row["url"].endswith("/pricing")
    assert row["title"] == "Pricing" and row["pages"] == 2
    assert row["landing_url"] == "https://shop.example/"
    assert row["search_terms"] == "blue shoes"
    assert row["browser"].startswith("Chrome") and row["os"].startswith("Windows")
    assert row["device"] == "Desktop" and row["state"] == "browsing"
    assert row["visit_number"] == 1
    # Only one row for the visitor, whatever the tab count (GET /api/console/visitors).
    snap = app.services.monitor.snapshot_event()["visitors"]
    assert [v["id"] for v in snap].count(ann.id) == 1
    # The trail (GET /api/console/visitors/ID).
    detail = app.run(app.services.monitor.detail(ann.id))
    assert [p["url"] for p in detail["visits"][0]["trail"]] == [
        "https://shop.example/",
        "https://shop.example/pricing",
    ]
    ann.disconnect(tab1)
    app.advance(COALESCE)
    row = row_of(bob.stream.events, ann.id)
    assert row["tabs"] == 1 and row["state"] == "browsing"
    assert tab2.closed is None


def test_visitor_leaves_after_last_tab_and_returns_as_second_visit(make_app_in_process):
    app = make_app_in_process({"monitor": {"leave_grace": "1s"}})
    bob = app.operator("bob")
    bob.connect()
    ann = app.visitor()
    ann.track("https://shop.example/a", "A")
    ann.connect()
    app.advance(COALESCE)
    assert row_of(bob.stream.events, ann.id)["state"] == "browsing"
    ann.disconnect()
    app.advance(0.5)
    assert row_of(bob.stream.events, ann.id)["state"] == "browsing"
    app.advance(0.5 + COALESCE)
    assert row_of(bob.stream.events, ann.id)["state"] == "left"
    # Back again: a returning visitor, second visit.
    ann.track("https://shop.example/b", "B")
    app.advance(COALESCE)
    row = row_of(bob.stream.events, ann.id)
    assert row["visit_number"] == 2 and row["state"] == "browsing" and row["pages"] == 1
    detail = app.run(app.services.monitor.detail(ann.id))
    assert [v["number"] for v in detail["visits"]] == [2, 1]


def test_a_visitor_without_a_stream_leaves_after_the_grace_of_the_last_page_view(
    make_app_in_process,
):
    app = make_app_in_process({"monitor": {"leave_grace": "10s"}})
    bob = app.operator("bob")
    bob.connect()
    ann = app.visitor()
    ann.track("https://shop.example/a", "A")
    app.advance(8)
    ann.track("https://shop.example/b", "B")  # each page view moves the deadline
    app.advance(8)
    assert row_of(bob.stream.events, ann.id)["state"] == "browsing"
    app.advance(2.5)
    assert row_of(bob.stream.events, ann.id)["state"] == "left"


def test_a_visitor_turns_idle_without_page_views_and_is_forgotten_a_minute_after_leaving(
    make_app_in_process,
):
    app = make_app_in_process({"monitor": {"idle_after": "60s", "leave_grace": "1s"}})
    bob = app.operator("bob")
    bob.connect()
    ann = app.visitor()
    ann.track("https://shop.example/a", "A")
    ann.connect()
    cid = app.visitor()  # another one, with one page view only
    cid.track("https://shop.example/", "Home")
    cid.connect()
    app.advance(40)
    ann.track("https://shop.example/b", "B")  # a page view puts idleness off
    app.advance(30)
    assert row_of(bob.stream.events, ann.id)["state"] == "browsing"
    assert row_of(bob.stream.events, cid.id)["state"] == "idle"
    app.advance(31 + COALESCE)
    assert row_of(bob.stream.events, ann.id)["state"] == "idle"
    ann.track("https://shop.example/c", "C")
    app.advance(COALESCE)
    assert row_of(bob.stream.events, ann.id)["state"] == "browsing"
    ann.disconnect()
    app.advance(1 + COALESCE)
    assert row_of(bob.stream.events, ann.id)["state"] == "left"
    app.advance(59)
    assert row_of(bob.stream.events, ann.id)["state"] == "left"
    app.advance(2 + COALESCE)
    assert row_of(bob.stream.events, ann.id) is None  # "gone" from every console
    assert ann.id not in {v["id"] for v in app.services.monitor.snapshot_event()["visitors"]}
    # One who comes back before that is not forgotten by the look the first leaving set.
    cid.disconnect()
    app.advance(1 + COALESCE)
    assert row_of(bob.stream.events, cid.id)["state"] == "left"
    app.advance(30)
    cid.track("https://shop.example/e", "E")
    app.advance(1.5)
    assert row_of(bob.stream.events, cid.id)["state"] == "left"
    app.advance(31 + COALESCE)
    row = row_of(bob.stream.events, cid.id)
    assert row is not None and row["url"].endswith("/e")
    app.advance(30)
    assert row_of(bob.stream.events, cid.id) is None


def test_page_views_older_than_the_retention_are_purged_by_the_hourly_tick(make_app_in_process):
    app = make_app_in_process({"monitor": {"retention": "30m", "leave_grace": "1s"}})
    ann = app.visitor()
    ann.track("https://shop.example/old", "Old")
    app.advance(40 * 60)  # the first purge ran at the first tick: nothing was old yet
    ann.track("https://shop.example/new", "New")
    app.advance(30)
    visits = app.run(app.services.monitor.detail(ann.id))["visits"]
    assert [p["url"] for v in visits for p in v["trail"]] == [
        "https://shop.example/new",
        "https://shop.example/old",
    ]
    app.advance(21 * 60)  # an hour after the first purge: the old page view is past 30 minutes
    visits = app.run(app.services.monitor.detail(ann.id))["visits"]
    assert [p["url"] for v in visits for p in v["trail"]] == ["https://shop.example/new"]


def test_country_from_a_geolite2_style_database(make_app_in_process, tmp_path):
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    db_path = tmp_path / "countries.mmdb"
    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-Country", languages=["en"])
    writer.insert_network(
        IPSet(["127.0.0.0/8"]), {"country": {"iso_code": "NL", "names": {"en": "Netherlands"}}}
    )
    writer.to_db_file(str(db_path))
    app = make_app_in_process({"monitor": {"geoip_db": str(db_path)}})
    bob = app.operator("bob")
    bob.connect()
    ann = app.visitor()
    ann.track("https://shop.example/", "Home")
    app.advance(COALESCE)
    assert row_of(bob.stream.events, ann.id)["country"] == "Netherlands"
    elsewhere = app.visitor(ip="192.0.2.7")
    elsewhere.track("https://shop.example/", "Home")
    app.advance(COALESCE)
    assert row_of(bob.stream.events, elsewhere.id)["country"] == ""


def test_bad_beacons_are_refused_or_truncated(server):
    ann = server.visitor()
    # A good one, as a simple cross-origin request: 204 with the CORS answer.
    r = track(server, ann.token, "https://shop.example/", "Home")
    assert r.status_code == 204, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:9"
    r = track(server, ann.token, "javascript:alert(1)")
    assert r.status_code == 400 and r.json()["field"] == "url"
    r = track(server, "not-a-token", "https://shop.example/")
    assert r.status_code == 401 and r.json()["error"] == "bad_token"
    r = requests.post(server.url + "/api/visitor/track", data=b"\xff\xfe", timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"] == "invalid_utf8"
    r = requests.post(
        server.url + "/api/visitor/track", json={"token": ann.token, "url": 5}, timeout=TIMEOUT
    )
    assert r.status_code == 400
    long_ua = "<script>alert(1)</script>" * 400
    r = track(server, ann.token, "https://shop.example/" + "x" * 5000, "<b>" * 400, ua=long_ua)
    assert r.status_code == 204
    bob = server.console("bob")
    row = [
        v for v in bob.get("/api/console/visitors").json()["visitors"] if v["id"] == ann.visitor_id
    ][0]
    assert len(row["url"]) == 2048 and len(row["title"]) == 512


def test_a_restart_continues_the_visit(server):
    bob = server.console("bob")
    ann = server.visitor()
    track(server, ann.token, "https://shop.example/a", "A")
    ann.connect()
    wait_for(
        lambda: any(
            v["id"] == ann.visitor_id for v in bob.get("/api/console/visitors").json()["visitors"]
        )
    )
    server.restart()
    ann.connect()
    track(server, ann.token, "https://shop.example/b", "B")
    bob = server.console("bob")
    ws = bob.connect()
    row = wait_for(
        lambda: (r := row_of(ws.events, ann.visitor_id)) and r["pages"] == 2 and r,
        what="the same visit, two pages",
    )
    assert row["visit_number"] == 1 and row["landing_url"] == "https://shop.example/a"


def test_a_beacon_is_answered_as_the_track_handler_answers_it(make_server):
    """A plain beacon is answered at the connection (``web/beacon.py``); the same request with
    a query string goes through ``TrackHandler``. Both give the same status, headers and body,
    good or refused, and both page views are stored."""
    server = make_server(config={"widget": {"allowed_origins": "https://shop.example"}})
    ann = server.visitor()
    good = json.dumps({"token": ann.token, "url": "https://shop.example/", "title": "Home"})
    cases = {
        "allowed origin": (good, {"Origin": "https://shop.example"}),
        "no origin": (good, {}),
        "refused origin": (good, {"Origin": "https://elsewhere.example"}),
        "bad json": ("{nope", {"Origin": "https://shop.example"}),
        "not utf-8": (b"\xff\xfe", {}),
        "unknown token": (json.dumps({"token": "x", "url": "https://a.example/"}), {}),
        "unknown field": (json.dumps({"token": ann.token, "url": "https://a.ex/", "z": 1}), {}),
        "not http": (json.dumps({"token": ann.token, "url": "ftp://a.example/"}), {}),
    }
    for name, (body, headers) in cases.items():
        answers = []
        for path in ("/api/visitor/track", "/api/visitor/track?through=handler"):
            r = requests.post(
                server.url + path,
                data=body,
                headers={"Content-Type": "text/plain", "User-Agent": CHROME, **headers},
                timeout=TIMEOUT,
            )
            kept = {k.lower(): v for k, v in r.headers.items() if k.lower() != "date"}
            answers.append((r.status_code, kept, r.content))
            assert "date" in {k.lower() for k in r.headers}, (name, path)
        assert answers[0] == answers[1], name
        if name in ("allowed origin", "no origin"):
            assert answers[0][0] == 204, name
    # Both paths stored their page views: two per good case.
    wait_for(lambda: server.rows("SELECT COUNT(*) FROM page_view")[0][0] == 4, what="4 stored")
