"""Widget appearance and allowed origins, set by an administrator in the console."""

import requests


def test_admin_sets_appearance_and_the_widget_config_serves_it(server):
    admin = server.console("admin")
    r = admin.patch(
        "/api/console/settings",
        {
            "appearance": {
                "color": "#e11d48",
                "title": "Ask us",
                "greeting": "Hi!\nHow can we help?",
                "position": "left",
            }
        },
    )
    assert r.status_code == 200, r.text
    cfg = requests.get(server.url + "/api/widget/config", timeout=10).json()
    assert cfg["appearance"] == {
        "color": "#e11d48",
        "title": "Ask us",
        "greeting": "Hi!\nHow can we help?",
        "position": "left",
    }
    # An empty value removes a key; survives a restart.
    admin.patch("/api/console/settings", {"appearance": {"title": ""}})
    server.restart()
    cfg = requests.get(server.url + "/api/widget/config", timeout=10).json()
    assert "title" not in cfg["appearance"] and cfg["appearance"]["color"] == "#e11d48"


def test_appearance_is_pushed_to_connected_visitors(server):
    ann = server.visitor()
    ws = ann.connect()
    admin = server.console("admin")
    admin.patch("/api/console/settings", {"appearance": {"color": "#123456"}})
    ev = ws.wait(lambda e: e["type"] == "appearance")
    assert ev["appearance"]["color"] == "#123456"


def test_bad_settings_are_refused_and_change_nothing(server):
    admin = server.console("admin")
    before = admin.get("/api/console/settings").json()
    for body, code in [
        ({"appearance": {"color": "red; background:url(x)"}}, "invalid_field"),
        ({"appearance": {"image_online": "javascript:alert(1)"}}, "invalid_field"),
        ({"appearance": {"position": "middle"}}, "invalid_field"),
        ({"appearance": {"nope": "x"}}, "unknown_field"),
        ({"appearance": {"title": "x" * 101}}, "too_long"),
        ({"allowed_origins": ["not a url"]}, "invalid_field"),
        ({"colour": "#fff"}, "unknown_field"),
    ]:
        r = admin.patch("/api/console/settings", body)
        assert r.status_code == 400 and r.json()["error"] == code, (body, r.text)
    assert admin.get("/api/console/settings").json() == before
    bob = server.console("bob")
    r = bob.patch("/api/console/settings", {"appearance": {"color": "#ffffff"}})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"


def test_button_image_follows_availability_and_custom_images(server):
    r = requests.get(server.url + "/api/button", timeout=10, allow_redirects=False)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/svg+xml"
    offline_svg = r.content
    bob = server.console("bob")
    bob.connect()
    r = requests.get(server.url + "/api/button", timeout=10, allow_redirects=False)
    assert r.status_code == 200 and r.content != offline_svg
    admin = server.console("admin")
    admin.patch(
        "/api/console/settings", {"appearance": {"image_online": "https://cdn.example.com/on.png"}}
    )
    r = requests.get(server.url + "/api/button", timeout=10, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "https://cdn.example.com/on.png"


def test_allowed_origins_from_the_console_restrict_the_visitor_api(server):
    admin = server.console("admin")
    r = admin.patch("/api/console/settings", {"allowed_origins": ["https://shop.example"]})
    assert r.json()["allowed_origins"] == ["https://shop.example"]
    url = server.url + "/api/visitor/token"
    r = requests.post(url, json={}, headers={"Origin": "https://evil.example"}, timeout=10)
    assert r.status_code == 403 and r.json()["error"] == "origin_not_allowed"
    r = requests.post(url, json={}, headers={"Origin": "https://shop.example"}, timeout=10)
    assert r.status_code == 201
    assert r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
