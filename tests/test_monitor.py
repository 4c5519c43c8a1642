"""Live traffic monitor and invitations, over the protocol."""

import uuid

import requests
from conftest import TIMEOUT, wait_for

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


def track(server, token, url, title="", referrer="", ua=CHROME):
    # text/plain, as the widget sends it: a simple request with no CORS preflight.
    import json

    return requests.post(
        server.url + "/api/visitor/track",
        data=json.dumps({"token": token, "url": url, "title": title, "referrer": referrer}),
        headers={"Content-Type": "text/plain", "User-Agent": ua, "Origin": "http://localhost:9"},
        timeout=TIMEOUT,
    )


def row_of(ws, vid):
    """The latest monitor row for a visitor, from the snapshot and the deltas seen so far."""
    row = None
    for e in ws.events:
        if e["type"] in ("visitors", "visitors_changed"):
            for r in e["visitors"]:
                if r["id"] == vid:
                    row = r
            if e["type"] == "visitors_changed" and vid in e.get("gone", []):
                row = None
    return row


def test_page_views_tabs_and_trail(server):
    bob = server.console("bob")
    ws = bob.connect()
    ann = server.visitor()
    r = track(
        server,
        ann.token,
        "https://shop.example/",
        "Home",
        "https://www.bing.com/search?q=blue+shoes",
    )
    assert r.status_code == 204, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:9"
    tab1 = ann.connect()
    tab2 = ann.connect()  # a second tab of the same browser
    track(server, ann.token, "https://shop.example/pricing", "Pricing")
    row = wait_for(
        lambda: (
            (r := row_of(ws, ann.visitor_id))
            and r["tabs"] == 2
            and r["url"].endswith("/pricing")
            and r
        ),
        what="one row with two tabs on /pricing",
    )
    assert row["title"] == "Pricing" and row["pages"] == 2
    assert row["landing_url"] == "https://shop.example/"
    assert row["search_terms"] == "blue shoes"
    assert row["browser"].startswith("Chrome") and row["os"].startswith("Windows")
    assert row["device"] == "Desktop" and row["state"] == "browsing"
    assert row["visit_number"] == 1
    # Only one row for the visitor, whatever the tab count.
    snap = bob.get("/api/console/visitors").json()["visitors"]
    assert [v["id"] for v in snap].count(ann.visitor_id) == 1
    # The trail.
    detail = bob.get(f"/api/console/visitors/{ann.visitor_id}").json()
    assert [p["url"] for p in detail["visits"][0]["trail"]] == [
        "https://shop.example/",
        "https://shop.example/pricing",
    ]
    tab1.close()
    wait_for(lambda: (r := row_of(ws, ann.visitor_id)) and r["tabs"] == 1, what="one tab")
    assert row_of(ws, ann.visitor_id)["state"] == "browsing"
    assert tab2.closed is None


def test_visitor_leaves_after_last_tab_and_returns_as_second_visit(make_server):
    server = make_server(config={"monitor": {"leave_grace": "1s"}})
    server.create_operator("bob", display_name="Bob")
    bob = server.console("bob")
    ws = bob.connect()
    ann = server.visitor()
    track(server, ann.token, "https://shop.example/a", "A")
    tab = ann.connect()
    wait_for(lambda: row_of(ws, ann.visitor_id), what="row")
    tab.close()
    wait_for(lambda: (r := row_of(ws, ann.visitor_id)) and r["state"] == "left", what="left")
    # Back again: a returning visitor, second visit.
    track(server, ann.token, "https://shop.example/b", "B")
    row = wait_for(
        lambda: (r := row_of(ws, ann.visitor_id)) and r["visit_number"] == 2 and r,
        what="second visit",
    )
    assert row["state"] in ("browsing",) and row["pages"] == 1
    detail = bob.get(f"/api/console/visitors/{ann.visitor_id}").json()
    assert [v["number"] for v in detail["visits"]] == [2, 1]


def test_bad_beacons_are_refused_or_truncated(server):
    ann = server.visitor()
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


def test_invite_accept_and_chat(server):
    bob = server.console("bob")
    bob_ws = bob.connect()
    ann = server.visitor()
    track(server, ann.token, "https://shop.example/pricing", "Pricing")
    vws = ann.connect()
    wait_for(lambda: row_of(bob_ws, ann.visitor_id), what="row")
    r = bob_ws.request(
        {"type": "invite", "visitor_id": ann.visitor_id, "message": "Need help with pricing?"}
    )
    assert r["type"] == "ack", r
    inv = vws.wait(lambda e: e["type"] == "invitation")
    assert inv["operator"]["name"] == "Bob" and inv["message"] == "Need help with pricing?"
    # Inviting twice does not make a second invitation.
    r2 = bob_ws.request({"type": "invite", "visitor_id": ann.visitor_id, "message": "again"})
    assert r2["invitation"]["id"] == inv["id"]
    assert len([e for e in vws.events if e["type"] == "invitation"]) == 1
    wait_for(
        lambda: (r := row_of(bob_ws, ann.visitor_id)) and r["state"] == "invited",
        what="invited state",
    )
    # A reconnecting tab is shown the pending invitation too.
    vws2 = ann.connect()
    assert vws2.wait(lambda e: e["type"] == "invitation")["id"] == inv["id"]
    a = vws.request(
        {
            "type": "accept_invitation",
            "invitation_id": inv["id"],
            "name": "Ann",
            "text": "Yes please",
            "client_id": uuid.uuid4().hex,
        }
    )
    assert a["type"] == "ack" and a["chat"]["status"] == "active", a
    chat_id = a["chat"]["id"]
    assert a["chat"]["operator"]["name"] == "Bob"
    bob_ws.wait(lambda e: e.get("type") == "message" and e.get("text") == "Yes please")
    started = [e for e in bob_ws.chat_events(chat_id) if e["type"] == "chat_started"][0]
    assert started["invitation"]["message"] == "Need help with pricing?"
    bob_ws.request({"type": "message", "chat_id": chat_id, "text": "Hi Ann", "client_id": "x1"})
    vws.wait(lambda e: e.get("text") == "Hi Ann")
    wait_for(
        lambda: (
            (r := row_of(bob_ws, ann.visitor_id))
            and r["state"] == "chatting"
            and r["operator"]["name"] == "Bob"
        ),
        what="chatting with Bob",
    )


def test_decline_expire_and_left_visitor(make_server):
    server = make_server(config={"monitor": {"invitation_ttl": "1s", "leave_grace": "1s"}})
    server.create_operator("bob", display_name="Bob")
    bob = server.console("bob")
    bob_ws = bob.connect()
    ann = server.visitor()
    vws = ann.connect()
    wait_for(lambda: row_of(bob_ws, ann.visitor_id), what="row")
    r = bob_ws.request({"type": "invite", "visitor_id": ann.visitor_id})
    inv = vws.wait(lambda e: e["type"] == "invitation")
    d = vws.request({"type": "decline_invitation", "invitation_id": inv["id"]})
    assert d["type"] == "ack"
    wait_for(
        lambda: (
            (r := row_of(bob_ws, ann.visitor_id))
            and r["invitation"]
            and r["invitation"]["state"] == "declined"
        ),
        what="declined",
    )
    # A new invitation expires when ignored.
    r = bob_ws.request({"type": "invite", "visitor_id": ann.visitor_id})
    inv2 = r["invitation"]
    assert inv2["id"] != inv["id"]
    vws.wait(lambda e: e["type"] == "invitation_expired" and e["id"] == inv2["id"])
    wait_for(
        lambda: (r := row_of(bob_ws, ann.visitor_id)) and r["invitation"]["state"] == "expired",
        what="expired",
    )
    late = vws.request({"type": "accept_invitation", "invitation_id": inv2["id"]})
    assert late["error"] == "not_found"
    # A visitor who left cannot be invited.
    vws.close()
    wait_for(lambda: (r := row_of(bob_ws, ann.visitor_id)) and r["state"] == "left", what="left")
    r = bob_ws.request({"type": "invite", "visitor_id": ann.visitor_id})
    assert r["error"] == "visitor_left"


def test_automatic_invitation_rule(server):
    admin = server.console("admin")
    admin.connect()  # an operator online: rules only fire then
    r = admin.post(
        "/api/console/invite-rules",
        {
            "name": "Pricing help",
            "message": "Questions about plans?",
            "conditions": {"url_contains": "/pricing", "min_pages": 2},
        },
    )
    assert r.status_code == 201, r.text
    bad = admin.post(
        "/api/console/invite-rules",
        {"name": "x", "message": "y", "conditions": {"weather": "sunny"}},
    )
    assert bad.status_code == 400 and bad.json()["error"] == "unknown_field"
    ann = server.visitor()
    vws = ann.connect()
    track(server, ann.token, "https://shop.example/pricing", "Pricing")
    assert not [e for e in vws.events if e["type"] == "invitation"]
    track(server, ann.token, "https://shop.example/pricing?plan=pro", "Pricing")
    inv = vws.wait(lambda e: e["type"] == "invitation")
    assert inv["message"] == "Questions about plans?" and inv["operator"] is None
    # At most once per visit.
    vws.request({"type": "decline_invitation", "invitation_id": inv["id"]})
    track(server, ann.token, "https://shop.example/pricing", "Pricing")
    admin_ws = admin.ws
    admin_ws.request({"type": "ping"})
    assert len([e for e in vws.events if e["type"] == "invitation"]) == 1


def test_country_from_a_geolite2_style_database(make_server, tmp_path):
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    db_path = tmp_path / "countries.mmdb"
    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-Country", languages=["en"])
    writer.insert_network(
        IPSet(["127.0.0.0/8"]), {"country": {"iso_code": "NL", "names": {"en": "Netherlands"}}}
    )
    writer.to_db_file(str(db_path))
    server = make_server(config={"monitor": {"geoip_db": str(db_path)}})
    server.create_operator("bob", display_name="Bob")
    bob = server.console("bob")
    ws = bob.connect()
    ann = server.visitor()
    track(server, ann.token, "https://shop.example/", "Home")
    row = wait_for(lambda: row_of(ws, ann.visitor_id), what="row")
    assert row["country"] == "Netherlands"
