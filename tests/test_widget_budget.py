"""The widget's byte budget, as served (DESIGN §6): what a customer's visitor downloads must
stay small, so no later feature can quietly make every page of their site heavier."""

import requests
from conftest import ROOT, TIMEOUT

#: The loader every page of the customer's site fetches, gzipped.
LOADER_BUDGET = 4096
#: Everything the widget can load (loader, its modules, the chat window's CSS and the pop-out
#: page), gzipped.
WHOLE_BUDGET = 30 * 1024


def served_size(url: str) -> int:
    """Bytes on the wire for a browser that accepts gzip, as the server sends them."""
    r = requests.get(url, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=TIMEOUT)
    assert r.status_code == 200, (url, r.status_code)
    body = r.raw.read(decode_content=False)
    if len(body) > 1024:  # the server compresses anything worth compressing
        assert r.headers.get("Content-Encoding") == "gzip", url
    return len(body)


def test_the_widget_stays_within_its_byte_budget_as_served(make_server):
    server = make_server()
    loader = served_size(server.url + "/widget.js")
    # Every module the loader can fetch (stream, presence, chat...) is a .js beside it.
    modules = sorted(
        p.name for p in (ROOT / "assets" / "widget").glob("*.js") if p.name != "widget.js"
    )
    assert {"stream.js", "presence.js", "chat.js"} <= set(modules)
    sizes = {"/widget.js": loader}
    for name in modules + ["chat.css"]:
        sizes[f"/assets/widget/{name}"] = served_size(server.url + f"/assets/widget/{name}")
    sizes["/chat"] = served_size(server.url + "/chat")
    assert loader <= LOADER_BUDGET, sizes
    assert sum(sizes.values()) <= WHOLE_BUDGET, sizes
