"""Several processes as one site: what only a cluster has.

Each test runs two ``cutelive`` processes on one PostgreSQL database and one Redis
(``cluster.Cluster``: visitors on the first, consoles on the second), and breaks something: a
process killed mid-chat, Redis or PostgreSQL restarted. Nothing acknowledged may be lost or
duplicated, and both parties catch up by themselves within seconds. (The protocol, durability,
resume and browser-chat tests also run on such a cluster: ``backends.BOTH_BACKENDS``.)
"""

from __future__ import annotations

import subprocess
import uuid

import pytest
from backends import Postgres, Redis
from cluster import Cluster
from conftest import SERVER_CMD, TIMEOUT, Server, VisitorClient, wait_for

#: Short graces, so that a vanished process's operators are let go within the test.
FAST = {"operators": {"offline_grace": "2s"}}


@pytest.fixture
def private_services():
    """A PostgreSQL and a Redis of this test's own, which it may stop and start."""
    pg, redis = Postgres(private=True), None
    try:
        redis = Redis(private=True)
        yield pg, redis
    finally:
        if redis is not None:
            redis.stop()
        pg.stop()


@pytest.fixture
def make_cluster(tmp_path, private_services):
    """Starts this test's cluster (with Bob, an operator) on its private services, with a
    config; stops it when the test ends."""
    pg, redis = private_services
    started: list[Cluster] = []

    def make(config=None) -> Cluster:
        c = Cluster(tmp_path / "c", config, None, pg.new_database(), redis.url)
        started.append(c)
        c.start()
        c.create_operator("bob", display_name="Bob")
        return c

    yield make
    for c in started:
        c.stop()


def _chat(c: Cluster):
    """Bob online on the second process, Ann chatting with him from the first."""
    return c.bob_answers_ann("hello across processes")


def _seqs(ws, chat_id: int) -> list[int]:
    return [e["seq"] for e in ws.events if e.get("chat_id") == chat_id and "seq" in e]


def _contiguous(seqs: list[int]) -> bool:
    return seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else True


def _stored_messages(c: Cluster, chat_id: int) -> list[tuple]:
    return c.rows(
        "SELECT seq, client_id FROM event WHERE chat_id = ? AND type = 'message' ORDER BY seq",
        chat_id,
    )


def test_visitor_and_operator_on_different_processes_see_each_other(make_cluster):
    c = make_cluster(FAST)
    watcher = c.visitor()
    watcher.connect()
    assert watcher.welcome["online"] is False
    bob_ws, ann, chat_id = _chat(c)
    # Availability crossed from the console's process to the visitor's.
    watcher.ws.wait(lambda e: e["type"] == "availability" and e["online"] is True)
    bob_ws.request({"type": "message", "chat_id": chat_id, "text": "hi Ann", "client_id": "b1"})
    ann.ws.wait(lambda e: e.get("text") == "hi Ann")
    ann.say(chat_id, "hi Bob")
    bob_ws.wait(lambda e: e.get("text") == "hi Bob")
    # Typing crosses too (ephemeral: never stored).
    ann.ws.send({"type": "typing", "chat_id": chat_id, "typing": True})
    bob_ws.wait(lambda e: e["type"] == "typing" and e["chat_id"] == chat_id)


def test_kill_9_of_the_visitors_process_mid_chat_loses_and_duplicates_nothing(make_cluster):
    c = make_cluster(FAST)
    bob_ws, ann, chat_id = _chat(c)
    acked = [ann.say(chat_id, f"before {i}")["message"]["seq"] for i in range(5)]
    Server.kill(c)  # the visitors' process only: SIGKILL
    # The widget reconnects to the other address with its cursor and goes on.
    seen = max(_seqs(ann.ws, chat_id))
    back = VisitorClient(c.peer, ann.token)
    ws = back.connect(cursors={str(chat_id): seen})
    assert back.welcome["type"] == "welcome"
    for i in range(5):
        ack = back.say(chat_id, f"after {i}")
        assert ack["type"] == "ack", ack
        acked.append(ack["message"]["seq"])
    bob_ws.wait(lambda e: e.get("text") == "after 4")
    ops = _seqs(bob_ws, chat_id)
    assert _contiguous(ops) and set(acked) <= set(ops), f"{ops} {acked}"
    # The visitor's own numbering, across both connections: no gap, no repeat.
    visitor = _seqs(ann.ws, chat_id) + _seqs(ws, chat_id)
    assert _contiguous(visitor), visitor
    stored = _stored_messages(c, chat_id)
    assert len(stored) == len({s for s, _ in stored}) == 1 + 10


def test_a_vanished_process_takes_its_operators_offline_within_the_grace(make_cluster):
    c = make_cluster(FAST)
    c.online("bob")
    ann = c.visitor()
    ann.connect()
    wait_for(
        lambda: (
            ann.ws.events
            and any(
                e["type"] in ("welcome", "availability") and e.get("online") for e in ann.ws.events
            )
        ),
        what="bob online for the visitor",
    )
    c.peer.kill()  # the console's process dies with Bob's socket: nobody says goodbye

    def offline() -> bool:
        ann.ws.request({"type": "ping"})  # (the test's socket times out when silent)
        return any(e["type"] == "availability" and not e["online"] for e in ann.ws.events)

    try:
        wait_for(offline, timeout=30, interval=1, what="availability offline")
    except AssertionError:
        print("".join(c.log_lines[-60:]))
        print([e for e in ann.ws.events if e["type"] != "pong"])
        raise


def test_a_stopped_site_leaves_no_key_in_redis_for_good(make_cluster, private_services):
    """What the processes share lives in Redis only as long as they do (plus a minute)."""
    import redis as redis_client

    from livesupport.cluster import RedisHub, cluster_namespace

    _pg, redis = private_services
    c = make_cluster(FAST)
    c.online("bob")
    r = redis_client.Redis.from_url(redis.url)
    try:
        prefix = cluster_namespace(c.database_url) + ":"
        wait_for(lambda: r.exists(prefix + "presence"), what="the site's presence in Redis")
        c.stop()
        ttls = {k.decode(): r.pttl(k) for k in r.keys(prefix + "*")}
    finally:
        r.close()
    assert prefix + "presence" in ttls
    assert ttls and all(0 < ttl <= RedisHub.SHARED_KEPT * 1000 for ttl in ttls.values()), ttls


@pytest.mark.parametrize("service", ["redis", "postgresql"])
def test_a_restart_of_redis_or_postgresql_mid_chat_loses_and_duplicates_nothing(
    make_cluster, private_services, service
):
    pg, redis = private_services
    c = make_cluster()
    bob_ws, ann, chat_id = _chat(c)
    acked = [ann.say(chat_id, f"before {i}")["message"]["seq"] for i in range(3)]
    (redis if service == "redis" else pg).stop_server()
    pending = uuid.uuid4().hex
    first = ann.say(chat_id, "during", client_id=pending)
    if service == "redis":
        # The database is the truth: the message is stored and acknowledged, and the
        # console's process reads it from there while Redis is away.
        assert first["type"] == "ack", first
    else:
        assert first["type"] == "error" and first["error"] == "storage_unavailable", first
    (redis.start_server if service == "redis" else pg.start_server)()
    ack = wait_for(
        lambda: (a := ann.say(chat_id, "during", client_id=pending))["type"] == "ack" and a,
        what="the send to succeed",
    )
    acked.append(ack["message"]["seq"])
    acked.append(ann.say(chat_id, "after")["message"]["seq"])
    bob_ws.wait(lambda e: e.get("text") == "after", timeout=TIMEOUT)
    ops = _seqs(bob_ws, chat_id)
    assert _contiguous(ops) and set(acked) <= set(ops), ops
    assert [e["text"] for e in bob_ws.events if e.get("type") == "message"].count("during") == 1
    stored = _stored_messages(c, chat_id)
    assert len(stored) == len({s for s, _ in stored}) == 1 + 3 + 2


def test_cluster_settings_that_cannot_work_refuse_the_start(tmp_path, postgres):
    def serve(ini: str) -> subprocess.CompletedProcess:
        path = tmp_path / "c.ini"
        path.write_text(ini)
        return subprocess.run(
            SERVER_CMD
            + ["serve", "-c", str(path), "--data-dir", str(tmp_path / "d")]
            + ["--port", "0"],
            capture_output=True,
            text=True,
            timeout=60,
        )

    r = serve("[cluster]\nredis_url = redis://127.0.0.1:6379/0\n")
    assert r.returncode == 2 and "[database] url" in r.stderr and "SQLite" in r.stderr
    url = postgres.new_database()
    r = serve(f"[database]\nurl = {url}\n[cluster]\nredis_url = redis://127.0.0.1:1/0\n")
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "[cluster] redis_url" in r.stderr, r.stderr
    assert postgres.fetch(url, "SELECT COUNT(*) FROM pg_tables WHERE tablename = 'chat'") == [
        (0,)
    ]  # nothing created
    r = serve(f"[database]\nurl = {url}\n[cluster]\nredis_url = http://x\n")
    assert r.returncode == 2 and "[cluster] redis_url" in r.stderr
    assert not (tmp_path / "d").exists()


def test_a_visitors_message_limit_holds_across_processes(make_cluster):
    """Ann has a tab on each process: the messages of both count against one limit."""
    c = make_cluster({"limits": {"visitor_messages": "6/1m"}})
    bob_ws, ann, chat_id = _chat(c)  # the first message counts too
    other_tab = VisitorClient(c.peer, ann.token)
    other_tab.connect()
    for i in range(3):
        assert ann.say(chat_id, f"from A {i}")["type"] == "ack"
    bob_ws.wait(lambda e: e.get("text") == "from A 2")  # (the tokens travel with events)
    replies = [other_tab.say(chat_id, f"from B {i}") for i in range(3)]
    assert [r["type"] for r in replies] == ["ack", "ack", "error"], replies
    assert replies[2]["error"] == "rate_limited" and "visitor_messages" in replies[2]["message"]


def test_a_transfer_and_the_settings_cross_processes(make_cluster):
    """Bob (on the consoles' process) passes Ann's chat to Alice (on the visitors' process);
    an administrator's settings saved on one process are what the other serves."""
    from conftest import ConsoleClient

    c = make_cluster()
    c.create_operator("alice", admin=True, display_name="Alice")
    alice = ConsoleClient(c)  # the first process, unlike Bob's
    alice.login("alice", "correct horse 1")
    alice_ws = alice.connect()
    assert alice_ws.request({"type": "status", "status": "online"})["type"] == "ack"
    bob_ws, ann, chat_id = _chat(c)
    offer = bob_ws.request(
        {"type": "transfer", "chat_id": chat_id, "operator_id": alice.operator["id"]}
    )
    assert offer["type"] == "ack", offer
    transfer_id = offer["transfer"]["id"]
    alice_ws.wait(lambda e: e["type"] == "transfer" and e["transfer"]["id"] == transfer_id)
    took = alice_ws.request({"type": "accept_transfer", "transfer_id": transfer_id})
    assert took["type"] == "ack", took
    ann.ws.wait(lambda e: e["type"] == "chat_transferred")
    ack = ann.say(chat_id, "hello Alice")
    assert ack["type"] == "ack"
    alice_ws.wait(lambda e: e.get("text") == "hello Alice")

    # Settings saved on the first process, served by the second.
    r = alice.patch("/api/console/settings", {"appearance": {"title": "Ask Alice"}})
    assert r.status_code == 200, r.text
    wait_for(
        lambda: c.peer_get("/api/widget/config")["appearance"].get("title") == "Ask Alice",
        what="the other process to serve the new title",
    )


def test_automatic_assignment_across_processes_keeps_the_operators_maximum(make_cluster):
    """Bob (on the consoles' process, at most one chat) is in an automatically assigning
    department; Ann's and Ben's chats start on the visitors' process: one is assigned to him,
    the other waits until his chat ends. Assignment runs on the process holding the lease."""
    c = make_cluster()
    c.create_operator("alice", admin=True, display_name="Alice")
    admin = c.console("alice")
    bob, bob_ws = c.online("bob")
    r = admin.patch(f"/api/console/operators/{bob.operator['id']}", {"max_chats": 1})
    assert r.status_code == 200, r.text
    body = {"key": "sales", "name": "Sales", "auto_assign": True}
    r = admin.post("/api/console/departments", dict(body, members=[bob.operator["id"]]))
    assert r.status_code == 201, r.text
    visitors = [c.visitor() for _ in range(2)]
    chats = []
    for v, name in zip(visitors, ("Ann", "Ben"), strict=True):
        v.connect()
        chats.append(v.start_chat(f"hello from {name}", name=name, department="sales"))
    chat_ids = [a["chat"]["id"] for a in chats]

    def assigned() -> list[int]:
        return [
            e["chat_id"]
            for e in bob_ws.events
            if e["type"] == "chat_accepted" and e.get("assigned")
        ]

    first = wait_for(lambda: assigned(), what="a chat assigned to Bob")[0]
    (other,) = [i for i in chat_ids if i != first]
    ack = bob_ws.request({"type": "close", "chat_id": first})
    assert ack["type"] == "ack", ack
    closed_at = len(bob_ws.events)
    wait_for(lambda: other in assigned(), what="the waiting chat assigned once a slot is free")
    # Not before: his maximum held while the first chat was open.
    later = [
        i
        for i, e in enumerate(bob_ws.events)
        if e["type"] == "chat_accepted" and e.get("chat_id") == other
    ]
    assert later and min(later) >= closed_at
    rows = c.rows("SELECT id, operator_id, status FROM chat ORDER BY id")
    assert [(i, op) for i, op, _ in rows] == [(i, bob.operator["id"]) for i in chat_ids]


def test_long_poll_needs_no_sticky_sessions(make_cluster):
    """Each poll of Ann's lands on the other process than the last: she gets every message of
    Bob's once, in order (``Poller`` checks the numbering of each answer)."""
    c = make_cluster()
    bob_ws, ann, chat_id = _chat(c)
    poller = ann.poller()
    poller.poll()
    processes = [c.peer.url + "/api/visitor/poll", c.url + "/api/visitor/poll"]
    for i in range(4):
        text = f"poll {i}"
        bob_ws.request({"type": "message", "chat_id": chat_id, "text": text, "client_id": text})
        poller.url = processes[i % 2]
        poller.poll_until(lambda e, text=text: e.get("text") == text, what=text)
    texts = [e["text"] for e in poller.events if e.get("type") == "message"]
    assert [t for t in texts if t.startswith("poll")] == [f"poll {i}" for i in range(4)]
