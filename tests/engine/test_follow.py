"""Following a background stream: recorded events first, then new ones, up to the end."""

from typing import Any, cast

from corral.responses.follow import follow_events
from corral.storage import Store


class FakeResponses:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.status = "in_progress"
        self.lease = True
        self.polls = 0

    async def events_after(self, response_id: str, after: int) -> list[dict[str, Any]]:
        return [event for event in self.events if event["sequence_number"] > after]

    async def get(self, tenant: str, response_id: str) -> dict[str, Any]:
        self.polls += 1
        if self.polls == 2:
            self.events.append({"type": "response.output_text.delta", "sequence_number": 2})
            self.status, self.lease = "completed", False
        return {"id": response_id, "status": self.status}

    async def leased(self, response_id: str) -> bool:
        return self.lease


def store(responses: FakeResponses) -> Store:
    return cast(Store, type("FakeStore", (), {"responses": responses})())


async def test_replays_after_the_cursor_then_follows_until_the_recording_ends() -> None:
    responses = FakeResponses()
    responses.events = [{"type": "response.created", "sequence_number": n} for n in (0, 1)]
    seen = [event["sequence_number"] async for event in follow_events(store(responses), "t", "r", 0, poll_s=0)]
    assert seen == [1, 2]


async def test_stops_at_the_terminal_event() -> None:
    responses = FakeResponses()
    responses.events = [
        {"type": "response.completed", "sequence_number": 0},
        {"type": "response.output_text.delta", "sequence_number": 1},
    ]
    seen = [event["type"] async for event in follow_events(store(responses), "t", "r", -1, poll_s=0)]
    assert seen == ["response.completed"]


async def test_an_idle_follower_gives_up() -> None:
    responses = FakeResponses()
    responses.polls = 5
    seen = [event async for event in follow_events(store(responses), "t", "r", -1, poll_s=0, idle_limit_s=-1)]
    assert seen == []
