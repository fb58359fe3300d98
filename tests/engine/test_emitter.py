"""The emitter numbers events and hands them on; it keeps no response state."""

from typing import Any

from corral.protocol.events import Emitter


async def test_numbers_from_zero_and_hands_each_event_to_the_recorder_then_the_sink() -> None:
    order: list[tuple[str, int]] = []

    async def recorder(event: dict[str, Any]) -> None:
        order.append(("recorder", event["sequence_number"]))

    async def sink(event: dict[str, Any]) -> None:
        order.append(("sink", event["sequence_number"]))

    emitter = Emitter(sink, recorder)
    for _ in range(3):
        await emitter.emit({"type": "response.output_text.delta", "delta": "x"})
    assert order == [("recorder", 0), ("sink", 0), ("recorder", 1), ("sink", 1), ("recorder", 2), ("sink", 2)]


async def test_without_consumers_nothing_is_numbered() -> None:
    emitter = Emitter()
    event: dict[str, Any] = {"type": "response.output_text.delta"}
    await emitter.emit(event)
    assert not emitter.streaming and "sequence_number" not in event and emitter.sequence == 0


async def test_a_detached_sink_leaves_the_recording_and_the_numbering_running() -> None:
    sent: list[int] = []
    recorded: list[int] = []

    async def sink(event: dict[str, Any]) -> None:
        sent.append(event["sequence_number"])

    async def recorder(event: dict[str, Any]) -> None:
        recorded.append(event["sequence_number"])

    emitter = Emitter(recorder=recorder)
    emitter.attach(sink)
    await emitter.emit({"type": "response.output_text.delta"})
    emitter.detach()
    await emitter.emit({"type": "response.output_text.delta"})
    assert sent == [0] and recorded == [0, 1] and emitter.streaming
    emitter.stop_recording()
    assert not emitter.streaming


async def test_text_parts_are_completed_as_openai_sends_them() -> None:
    seen: list[dict[str, Any]] = []

    async def sink(event: dict[str, Any]) -> None:
        seen.append(event)

    await Emitter(sink).emit({"type": "response.output_text.done", "text": "hi"})
    await Emitter(sink).emit({"type": "response.content_part.added", "part": {"type": "output_text", "text": ""}})
    assert seen[0]["logprobs"] == []
    assert seen[1]["part"] == {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
