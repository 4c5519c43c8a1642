"""A complete chat over the protocol alone: start, wait, accept, messages, typing, close."""

import uuid

from conftest import wait_for


def test_complete_chat_websocket_and_longpoll_see_same_sequence(server):
    bob = server.console("bob")
    bob_ws = bob.connect()
    welcome = bob_ws.wait(lambda e: e["type"] == "welcome")
    assert welcome["operator"]["display_name"] == "Bob"
    assert welcome["operator"]["status"] == "online"

    ann = server.visitor()
    ws = ann.connect()
    assert ann.welcome["type"] == "welcome" and ann.welcome["online"] is True
    # A second client of the same visitor on long-poll, in the same chat.
    poller = ann.poller()
    poller.poll()
    assert poller.events[0]["type"] == "welcome"

    ack = ann.start_chat("Hi, <b>is</b> anyone there?", name="Ann", page_url="https://shop/x")
    chat_id = ack["chat"]["id"]
    assert ack["chat"]["status"] == "waiting"
    assert ack["message"]["seq"] == 2

    # The operator sees the chat in the queue, with its first message.
    q = bob_ws.wait(lambda e: e["type"] == "queue" and e["chats"], what="queue with the chat")
    assert q["chats"][0]["id"] == chat_id
    assert q["chats"][0]["first_message"] == "Hi, <b>is</b> anyone there?"

    acc = bob_ws.request({"type": "accept", "chat_id": chat_id})
    assert acc["type"] == "ack" and acc["chat"]["status"] == "active"
    # The operator receives the whole chat from seq 1.
    bob_ws.wait(lambda e: e.get("type") == "chat_accepted", what="accepted")
    assert [e["seq"] for e in bob_ws.chat_events(chat_id)] == [1, 2, 3]
    ws.wait(lambda e: e["type"] == "chat_accepted" and e["operator"]["name"] == "Bob")

    # Typing both ways.
    assert bob_ws.request({"type": "typing", "chat_id": chat_id, "typing": True})["type"] == "ack"
    t = ws.wait(lambda e: e["type"] == "typing" and e["from"] == "operator")
    assert t["typing"] is True and t["expires_in"] > 0
    ws.request({"type": "typing", "chat_id": chat_id, "typing": True})
    bob_ws.wait(lambda e: e["type"] == "typing" and e["from"] == "visitor" and e["typing"])

    # Messages both ways; sending ends the sender's typing at the receiver.
    r = bob_ws.request(
        {"type": "message", "chat_id": chat_id, "text": "Hello Ann", "client_id": uuid.uuid4().hex}
    )
    assert r["type"] == "ack" and r["message"]["seq"] == 4
    ws.wait(lambda e: e["type"] == "typing" and e["from"] == "operator" and not e["typing"])
    m = ws.wait(lambda e: e["type"] == "message" and e["from"] == "operator")
    assert m["text"] == "Hello Ann" and m["operator"]["name"] == "Bob"
    r = ann.say(chat_id, "Thanks!")
    assert r["message"]["seq"] == 5
    bob_ws.wait(lambda e: e["type"] == "message" and e["text"] == "Thanks!")

    # The operator closes it.
    r = bob_ws.request({"type": "close", "chat_id": chat_id})
    assert r["type"] == "ack" and r["chat"]["status"] == "closed"
    ws.wait(lambda e: e["type"] == "chat_closed" and e["by"] == "operator")

    # The long-poll client saw exactly the same chat events in the same order.
    poller.poll_until(lambda e: e["type"] == "chat_closed", what="closed via long-poll")
    ws_seq = [(e["seq"], e["type"]) for e in ws.chat_events(chat_id)]
    lp_seq = [
        (e["seq"], e["type"]) for e in poller.events if e.get("chat_id") == chat_id and "seq" in e
    ]
    types = ["chat_started", "message", "chat_accepted", "message", "message", "chat_closed"]
    assert ws_seq == lp_seq == list(enumerate(types, 1))

    # The transcript says the same.
    t = ann.http.get(server.url + f"/api/visitor/chats/{chat_id}").json()
    assert [e["seq"] for e in t["events"]] == [1, 2, 3, 4, 5, 6]
    assert t["chat"]["status"] == "closed"


def test_visitor_closes_chat_and_operator_is_told(server):
    bob = server.console("bob")
    bob_ws = bob.connect()
    ann = server.visitor()
    ws = ann.connect()
    chat_id = ann.start_chat()["chat"]["id"]
    bob_ws.request({"type": "accept", "chat_id": chat_id})
    r = ws.request({"type": "close", "chat_id": chat_id})
    assert r["type"] == "ack" and r["chat"]["status"] == "closed"
    ev = bob_ws.wait(lambda e: e["type"] == "chat_closed")
    assert ev["by"] == "visitor" and ev["chat_id"] == chat_id
    # Writing to a closed chat is refused and stores nothing.
    r = ann.say(chat_id, "still there?")
    assert r["type"] == "error" and r["error"] == "chat_closed"
    t = ann.http.get(server.url + f"/api/visitor/chats/{chat_id}").json()
    assert t["chat"]["last_seq"] == 4


def test_long_poll_commands_via_send(server):
    """A visitor on long-poll only: start a chat and talk through POST /api/visitor/send."""
    bob = server.console("bob")
    bob_ws = bob.connect()
    ann = server.visitor()
    p = ann.poller()
    p.poll()
    r = ann.send({"type": "start_chat", "name": "Ann", "text": "via poll", "client_id": "c1"})
    assert r.status_code == 200 and r.json()["type"] == "ack", r.text
    chat_id = r.json()["chat"]["id"]
    p.poll_until(lambda e: e.get("type") == "message" and e["text"] == "via poll")
    bob_ws.request({"type": "accept", "chat_id": chat_id})
    bob_ws.request({"type": "message", "chat_id": chat_id, "text": "hi poller", "client_id": "o1"})
    p.poll_until(lambda e: e.get("type") == "message" and e["text"] == "hi poller")
    # Operator on long-poll too.
    op_p = bob.poller()
    op_p.poll()
    wait_for(lambda: any(e["type"] == "welcome" for e in op_p.events))
    assert [e["seq"] for e in op_p.events if e.get("chat_id") == chat_id] == [1, 2, 3, 4]
    r = bob.send({"type": "message", "chat_id": chat_id, "text": "from poll", "client_id": "o2"})
    assert r.status_code == 200, r.text
    op_p.poll_until(lambda e: e.get("text") == "from poll")
    p.poll_until(lambda e: e.get("text") == "from poll")


def test_typing_is_throttled_ephemeral_and_ended_by_a_message(app):
    """In-process: one ``typing: true`` a second per side reaches the other side, a stop is
    sent once, a message ends the sender's typing, and nothing of it is stored."""
    bob = app.operator("bob", display_name="Bob")
    bob.connect()
    ann = app.visitor()
    ann.connect()
    chat_id = ann.start_chat()["chat"]["id"]
    # Before an operator has the chat, the visitor's typing goes to nobody.
    ann.ok({"type": "typing", "chat_id": chat_id, "typing": True})
    assert not bob.stream.of_type("typing")
    bob.ok({"type": "accept", "chat_id": chat_id})
    app.advance(1)

    def typing(stream, who):
        return [e["typing"] for e in stream.of_type("typing") if e["from"] == who]

    for _ in range(5):
        ann.ok({"type": "typing", "chat_id": chat_id, "typing": True})
    assert typing(bob.stream, "visitor") == [True]
    assert bob.stream.last("typing")["expires_in"] > 0
    app.advance(1)
    ann.ok({"type": "typing", "chat_id": chat_id, "typing": True})
    assert typing(bob.stream, "visitor") == [True, True]
    for _ in range(2):
        ann.ok({"type": "typing", "chat_id": chat_id, "typing": False})
    assert typing(bob.stream, "visitor") == [True, True, False]
    # The operator types, then sends: the visitor sees the typing end with the message.
    bob.ok({"type": "typing", "chat_id": chat_id, "typing": True})
    bob.say(chat_id, "Hello Ann")
    assert typing(ann.stream, "operator") == [True, False]
    assert [e["type"] for e in ann.stream.events[-2:]] == ["message", "typing"]
    # Typing is never stored.
    events = ann.transcript(chat_id)["events"]
    assert [e["type"] for e in events] == ["chat_started", "message", "chat_accepted", "message"]
