"""Widget appearance and allowed origins, set by an administrator in the console. The rules
in-process; the button image and the origin check over HTTP against the server."""

import requests


def test_admin_sets_appearance_and_the_widget_config_serves_it(app):
    app.run(
        app.services.site.update(
            {
                "appearance": {
                    "color": "#e11d48",
                    "title": "Ask us",
                    "greeting": "Hi!\nHow can we help?",
                    "position": "left",
                }
            }
        )
    )
    # GET /api/widget/config
    assert app.services.site.widget_config()["appearance"] == {
        "color": "#e11d48",
        "title": "Ask us",
        "greeting": "Hi!\nHow can we help?",
        "position": "left",
    }
    # An empty value removes a key; survives a restart.
    app.run(app.services.site.update({"appearance": {"title": ""}}))
    app = app.restart()
    appearance = app.services.site.widget_config()["appearance"]
    assert "title" not in appearance and appearance["color"] == "#e11d48"


def test_appearance_is_pushed_to_connected_visitors(app):
    ann = app.visitor()
    ann.connect()
    app.run(app.services.site.update({"appearance": {"color": "#123456"}}))
    assert ann.stream.last("appearance")["appearance"]["color"] == "#123456"


def test_bad_settings_are_refused_and_change_nothing(app):
    """(That operators may not change settings at all is walked for every administrator
    route in test_access.py.)"""
    site = app.services.site
    ann = app.visitor()
    ann.connect()
    before = site.settings_view()
    for body, code in [
        ({"appearance": {"color": "red; background:url(x)"}}, "invalid_field"),
        ({"appearance": {"image_online": "javascript:alert(1)"}}, "invalid_field"),
        ({"appearance": {"position": "middle"}}, "invalid_field"),
        ({"appearance": {"nope": "x"}}, "unknown_field"),
        ({"appearance": {"title": "x" * 101}}, "too_long"),
        ({"allowed_origins": ["not a url"]}, "invalid_field"),
        ({"colour": "#fff"}, "unknown_field"),
    ]:
        err = app.error(site.update(body))
        assert err["status"] == 400 and err["error"] == code, (body, err)
    assert site.settings_view() == before
    assert not ann.stream.of_type("appearance")
    app = app.restart()
    assert app.services.site.settings_view() == before


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
