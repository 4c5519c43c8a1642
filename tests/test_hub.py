"""The in-process hub: each subscriber of any of the topics gets an event once, whether a topic
holds a few subscribers (a tuple) or many (a set), as they come and go."""

from __future__ import annotations

from livesupport.hub import Hub


class Sub:
    def __init__(self) -> None:
        self.got: list[str] = []

    def deliver(self, text: str, event) -> None:
        self.got.append(text)


def test_each_subscriber_gets_an_event_once_as_topics_grow_and_shrink():
    hub = Hub()
    many = [Sub() for _ in range(Hub.SMALL * 3)]
    for i, sub in enumerate(many):
        hub.subscribe(sub, "visitors", f"v:{i}")
    hub.subscribe(many[0], "visitors", "v:0")  # again: still once
    assert hub.count("visitors") == len(many) and hub.count("v:0") == 1
    hub.publish(["visitors", "v:0", "v:1"], {"type": "x"}, "all")
    assert [s.got for s in many] == [["all"]] * len(many)

    few = [Sub() for _ in range(3)]
    for sub in few:
        hub.subscribe(sub, "op:7")
    hub.unsubscribe(few[1])
    hub.publish(["op:7"], {"type": "x"}, "ops")
    assert [s.got for s in few] == [["ops"], [], ["ops"]]

    for sub in many[1:]:
        hub.unsubscribe(sub)
    assert hub.count("visitors") == 1 and hub.count("v:5") == 0
    hub.publish(["visitors", "v:5"], {"type": "x"}, "left")
    assert many[0].got == ["all", "left"] and many[5].got == ["all"]
    hub.unsubscribe(many[0])
    hub.unsubscribe(few[0])
    hub.unsubscribe(few[2])
    assert hub._subs == {} and hub.all_subscribers() == []
