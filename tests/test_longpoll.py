"""Long-poll as a transport: a conn carries only its own party's chats, and a second poll on
the same conn is answered at once instead of being held."""

import json
import threading

from conftest import TIMEOUT, wait_for


def test_long_poll_never_replays_another_visitors_chat(server):
    victim = server.visitor()
    victim.connect()
    secret_chat = victim.start_chat("my card number is 1234", name="Victim")["chat"]["id"]
    mallory = server.visitor()
    p = mallory.poller()
    p.cursors = {str(secret_chat): 1, "999": 1}
    first = p.poll()
    assert {e["chat_id"] for e in first if e["type"] == "reset"} == {secret_chat, 999}
    p.cursors = {}
    p.events = []
    # Something for the conn, so the poll answers at once.
    mallory.send({"type": "start_chat", "name": "M", "text": "hi", "client_id": "m1"})
    p.poll()
    assert not [e for e in p.events if e.get("chat_id") == secret_chat]
    assert "1234" not in json.dumps(p.events)


def test_a_second_poll_on_the_same_conn_is_answered_promptly(make_server):
    # Polls are held for ten minutes here, so any answer within the test's waits is prompt.
    server = make_server(config={"realtime": {"poll_timeout": "10m"}})
    server.create_operator("bob", display_name="Bob")
    bob_ws, ann, chat_id = server.bob_answers_ann("hi")
    p = ann.poller()
    p.poll()
    answers = []

    def poll():
        r = ann.http.post(p.url, json={"conn": p.conn, "cursors": p.cursors}, timeout=40)
        answers.append(r.json()["events"])

    a = threading.Thread(target=poll)
    a.start()
    wait_for(lambda: server.metrics()["held_polls"] == 1, what="the first poll held")
    b = threading.Thread(target=poll)
    b.start()
    wait_for(lambda: answers, what="the first poll to give way")
    bob_ws.request({"type": "message", "chat_id": chat_id, "text": "x", "client_id": "o1"})
    b.join(TIMEOUT)
    a.join(TIMEOUT)
    assert not a.is_alive() and not b.is_alive()  # neither was held for the poll timeout
    assert len(answers) == 2
    got = [evs for evs in answers if any(e.get("text") == "x" for e in evs)]
    assert got, answers
