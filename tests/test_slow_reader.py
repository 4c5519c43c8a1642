"""A client that stops reading (a laptop asleep on a stalled network) while its chats are busy:
the server closes its WebSocket once what it holds for it passes ``[limits] max_outbound``
(close 4008), other clients get every event in order meanwhile, and the stalled client
reconnects with its cursors and gets what it missed exactly once (docs/PROTOCOL.md §8, §9).

Real server, real sockets: the stalled console is a WebSocket whose receive buffer is made tiny
(``SO_RCVBUF``) and which is simply not read.
"""

import json
import socket
import time

import websocket
from conftest import PASSWORD, TIMEOUT, seqs, wait_for

#: Text of each message into the stalled console's chat (under ``[limits] message_chars``).
BIG = "x" * 4000
#: The visitors write as fast as the server acknowledges.
FAST_SENDERS = {"limits": {"visitor_messages": "100000/1s", "commands_per_socket": "100000/1s"}}
#: Give up flooding after this many messages (about 16 MB): the cap was not enforced.
MAX_MESSAGES = 4000


def _rss_kb(server) -> int:
    """The server process's resident memory now (``max_rss_kb`` in the metrics is the peak)."""
    with open(f"/proc/{server.proc.pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _stalled_console(server, client, cursors: dict) -> tuple[websocket.WebSocket, list[dict]]:
    """A console WebSocket with a tiny receive buffer, read up to its welcome and then not.

    Its segments are those of a real network (MSS 1,400 bytes rather than loopback's 64 KiB):
    Linux sizes the server's socket buffer from the segment size, and with loopback's it would
    hold megabytes before anything reached the server's own queue.
    """
    ws = websocket.create_connection(
        server.ws_url + "/api/console/ws",
        cookie=client.cookie_header(),
        origin=server.url,
        timeout=TIMEOUT,
        sockopt=(
            (socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),
            (socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1400),
        ),
    )
    ws.send(json.dumps({"type": "hello", "cursors": cursors}))
    events = [json.loads(ws.recv())]
    assert events[0]["type"] == "welcome", events
    return ws, events


def _read_to_the_end(ws: websocket.WebSocket, events: list[dict]) -> tuple:
    """Read what the server still sends: the events, then the close frame or the end."""
    while True:
        try:
            op, data = ws.recv_data(control_frame=True)
        except (websocket.WebSocketException, OSError) as e:
            return ("end", type(e).__name__)
        if op == websocket.ABNF.OPCODE_TEXT:
            events.append(json.loads(data))
        elif op == websocket.ABNF.OPCODE_CLOSE:
            return (int.from_bytes(data[:2], "big"), data[2:].decode())


def _say(visitor, chat_id: int, text: str) -> int:
    ack = visitor.say(chat_id, text)
    assert ack["type"] == "ack", ack
    return ack["message"]["seq"]


def test_a_console_that_stops_reading_is_closed_at_the_cap_and_resumes(
    make_server, seeded_database
):
    server = make_server(config=FAST_SENDERS, database=seeded_database)
    server.admin = ("admin", PASSWORD)
    # Bob has a chat with Ann, Alice (admin) one with Cy; each operator reads a WebSocket.
    bob, bob_ws = server.online("bob")
    alice, alice_ws = server.online("admin")
    ann, cy = server.visitor(), server.visitor()
    ann_ws = ann.connect()
    cy.connect()
    busy = ann.start_chat("hello")["chat"]["id"]
    assert bob_ws.request({"type": "accept", "chat_id": busy})["type"] == "ack"
    other = cy.start_chat("hi")["chat"]["id"]
    assert alice_ws.request({"type": "accept", "chat_id": other})["type"] == "ack"
    first = bob_ws.wait(lambda e: e.get("chat_id") == busy and e["type"] == "chat_accepted")
    alice_ws.wait(lambda e: e.get("chat_id") == other and e["type"] == "chat_accepted")

    # Bob's laptop, asleep: a second console of his that says hello and then reads nothing.
    stalled, stalled_events = _stalled_console(server, bob, {str(busy): first["seq"]})
    rss_before, peak_before = _rss_kb(server), server.metrics()["max_rss_kb"]

    # Ann writes big messages into Bob's chat, Cy small ones into Alice's, until the server
    # logs that it closed the stalled socket.
    started = time.monotonic()
    sent = 0
    log_from = len(server.log_lines)

    def close_logged():
        return [line for line in server.log_lines[log_from:] if "over max_outbound" in line]

    while not close_logged():
        assert sent < MAX_MESSAGES, "the stalled console was never closed"
        last_busy = _say(ann, busy, BIG)
        last_other = _say(cy, other, f"small {sent}")
        sent += 1
    took = time.monotonic() - started
    # Ann goes on writing: nothing of this reaches the closed socket.
    for i in range(3):
        last_busy = _say(ann, busy, f"after the close {i}")
    rss_at_close, peak_at_close = _rss_kb(server), server.metrics()["max_rss_kb"]

    # The stalled console, reading again, gets what was queued and then the close (the 4008
    # frame if it reads within Tornado's 5 s close handshake, else the connection's end).
    closed = _read_to_the_end(stalled, stalled_events)
    assert closed[0] in (4008, "end"), closed
    print(
        f"\nclosed after {sent} messages of {len(BIG)} characters ({sent * len(BIG) / 2**20:.1f}"
        f" MiB) in {took:.2f} s; server RSS {rss_before} -> {rss_at_close} kB (max_rss_kb"
        f" {peak_before} -> {peak_at_close}); the stalled client saw {closed}\n" + close_logged()[0]
    )
    # Bob's reading console and Alice's are left.
    wait_for(lambda: server.metrics()["operator_streams"] == 2, what="the stalled socket gone")

    # Everyone else got every event, in order, once.
    alice_ws.wait(lambda e: e.get("chat_id") == other and e.get("seq") == last_other)
    assert seqs(alice_ws.events, other) == list(range(1, last_other + 1))
    bob_ws.wait(lambda e: e.get("chat_id") == busy and e.get("seq") == last_busy)
    assert seqs(bob_ws.events, busy) == list(range(1, last_busy + 1))
    ann_ws.wait(lambda e: e.get("chat_id") == busy and e.get("seq") == last_busy)
    assert seqs(ann_ws.events, busy) == list(range(1, last_busy + 1))

    # What the stalled console applied is contiguous; it reconnects with its cursor and gets
    # the rest exactly once.
    got = seqs(stalled_events, busy)
    assert got == list(range(first["seq"] + 1, first["seq"] + 1 + len(got)))
    assert len(got) < last_busy - first["seq"], "the stalled console should have missed some"
    cursor = got[-1] if got else first["seq"]
    resumed = bob.connect(cursors={str(busy): cursor})
    resumed.wait(lambda e: e.get("chat_id") == busy and e.get("seq") == last_busy)
    assert seqs(resumed.events, busy) == list(range(cursor + 1, last_busy + 1))
    assert not [e for e in resumed.events if e["type"] == "reset"]
    # And it stays open: live events follow the replay.
    seq = _say(ann, busy, "are you back?")
    resumed.wait(lambda e: e.get("chat_id") == busy and e.get("seq") == seq)
    assert resumed.closed is None
    stalled.close()


def test_a_replay_larger_than_the_cap_does_not_close_the_socket(make_server, seeded_database):
    # A console back from a long sleep may be owed more than max_outbound: its replay is not
    # counted, or it would be closed on every reconnect. What comes live after it is.
    server = make_server(
        config={"limits": {**FAST_SENDERS["limits"], "max_outbound": "64KiB"}},
        database=seeded_database,
    )
    bob, bob_ws = server.online("bob")
    ann = server.visitor()
    ann.connect()
    busy = ann.start_chat("hello")["chat"]["id"]
    assert bob_ws.request({"type": "accept", "chat_id": busy})["type"] == "ack"
    for _ in range(100):  # about 400 KB of history
        _say(ann, busy, BIG)
    stalled, events = _stalled_console(server, bob, {str(busy): 0})
    live = _say(ann, busy, "live after the replay")
    bob_ws.wait(lambda e: e.get("chat_id") == busy and e.get("seq") == live)
    # Reading now, the console gets the whole chat and the live message, and no close.
    while live not in seqs(events, busy):
        events.append(json.loads(stalled.recv()))
    assert seqs(events, busy) == list(range(1, live + 1))
    assert not [line for line in server.log_lines if "over max_outbound" in line]
    # The cap still holds for what comes live: the same console, not reading again, is closed.
    sent = 0
    while not [line for line in server.log_lines if "over max_outbound" in line]:
        assert sent < MAX_MESSAGES, "the stalled console was never closed"
        _say(ann, busy, BIG)
        sent += 1
    stalled.close()
