"""Group commit on SQLite: the messages that arrive in one turn of the event loop are stored in
one transaction. Each is still acknowledged only after that commit, numbered in the order it
came and delivered once; anything else stored in the chat waits for them."""

from __future__ import annotations

from pathlib import Path


def test_messages_that_arrive_together_are_stored_in_order_and_each_delivered_once(app):
    """Messages of one turn of the loop share a commit (SQLite): each is acknowledged after
    it, numbered in the order it came, delivered once to each party in that order; a close
    that came with them is stored after them, and a repeated client id once."""
    bob, ann, chat_id = app.bob_answers_ann("first")
    before = max(e["seq"] for e in ann.stream.events if e.get("chat_id") == chat_id)
    said = [{"type": "message", "chat_id": chat_id, "text": f"m{i}"} for i in range(5)]
    with app.statements() as sql:
        replies = ann.at_once([dict(c, client_id=f"a{i}") for i, c in enumerate(said)])
    transactions = [s for s in sql if s.startswith("BEGIN")]
    assert len(transactions) == 1, sql  # the five share one commit
    replies += bob.at_once(
        [dict(c, client_id=f"b{i}") for i, c in enumerate(said)]
        + [dict(said[0], client_id="b0"), {"type": "close", "chat_id": chat_id}]
    )
    assert [r["type"] for r in replies] == ["ack"] * 12, replies
    stored = [r["message"]["client_id"] for r in replies[:11]]
    assert stored == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)] + ["b0"]
    assert replies[10]["message"] == replies[5]["message"]  # the repeat: the stored one
    for party in (ann, bob):
        got = [e for e in party.stream.events if e.get("chat_id") == chat_id]
        numbered = [e["seq"] for e in got if "seq" in e and e["seq"] > before]
        assert numbered == list(range(before + 1, before + 12)), numbered
        texts = [e["client_id"] for e in got if e["type"] == "message" and e["seq"] > before]
        assert texts == stored[:10]
        assert got[-1]["type"] == "chat_closed"
    events = ann.transcript(chat_id)["events"]
    assert [e["client_id"] for e in events if e.get("client_id")][-10:] == stored[:10]
    assert events[-1]["type"] == "chat_closed"


def test_the_checkpoint_thread_alone_runs_at_the_lowest_priority(server):
    """SQLite's checkpoints copy the log into the database from a thread at nice 19, so that
    the event loop does not wait for them where both share a core; the loop keeps its own."""
    pid = server.proc.pid
    nice = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        nice[int(task.name)] = int(fields[16])  # field 19 of proc(5): nice
    assert nice[pid] == 0, nice  # the event loop's thread
    assert sorted(nice.values()).count(19) == 1, nice
