"""The builder: every status a response passes through, and the events that announce its output."""

from typing import Any

from corral.protocol.request import validate_create_body
from corral.protocol.response import new_response
from corral.responses.builder import MODEL_CALL_FAILED, ResponseBuilder
from corral.upstream.turn import TurnResult
from tests.engine.fakes import Recording


def fresh() -> dict[str, Any]:
    return new_response("resp_1", validate_create_body({"model": "m", "input": "hi"}), conversation_id=None)


def test_settles_completed_with_a_completion_time() -> None:
    builder = ResponseBuilder(fresh())
    builder.settle(TurnResult())
    assert builder.status == "completed" and builder.object["completed_at"] is not None


def test_a_loop_that_ran_no_turn_settles_completed() -> None:
    builder = ResponseBuilder(fresh())
    builder.settle(None)
    assert builder.status == "completed"


def test_settles_failed_with_the_turns_error_or_a_generic_one() -> None:
    builder = ResponseBuilder(fresh())
    builder.settle(TurnResult(status="failed", error={"code": "rate_limit_exceeded", "message": "slow down"}))
    assert builder.status == "failed" and builder.object["error"]["code"] == "rate_limit_exceeded"
    bare = ResponseBuilder(fresh())
    bare.settle(TurnResult(status="failed"))
    assert bare.object["error"] == {"code": "server_error", "message": MODEL_CALL_FAILED}
    assert bare.object["completed_at"] is None


def test_settles_incomplete_with_the_turns_reason() -> None:
    builder = ResponseBuilder(fresh())
    builder.settle(TurnResult(status="incomplete", incomplete_details={"reason": "max_output_tokens"}))
    assert builder.status == "incomplete" and builder.object["incomplete_details"] == {"reason": "max_output_tokens"}


def test_a_status_the_loop_already_set_is_kept() -> None:
    builder = ResponseBuilder(fresh())
    builder.stop_incomplete({"reason": "max_tool_calls"})
    builder.settle(TurnResult())
    assert builder.status == "incomplete" and builder.object["incomplete_details"] == {"reason": "max_tool_calls"}


def test_background_statuses() -> None:
    builder = ResponseBuilder(fresh())
    builder.queue()
    assert builder.status == "queued"
    builder.begin()
    assert builder.status == "in_progress"
    builder.cancel()
    assert builder.status == "cancelled"


def test_made_without_generation_is_completed_with_zero_usage() -> None:
    builder = ResponseBuilder(fresh())
    builder.complete_without_generation()
    assert builder.status == "completed" and builder.object["usage"]["total_tokens"] == 0


def test_usage_adds_up_across_model_calls() -> None:
    builder = ResponseBuilder(fresh())
    builder.add_usage(None)
    assert builder.object["usage"] is None
    builder.add_usage({"input_tokens": 2, "output_tokens": 3, "total_tokens": 5})
    builder.add_usage({"input_tokens": 1, "output_tokens": 1, "total_tokens": 2})
    assert builder.object["usage"]["total_tokens"] == 7


async def test_without_consumers_items_are_kept_and_no_event_is_made() -> None:
    builder = ResponseBuilder(fresh())
    index = await builder.add_item({"type": "message", "id": "msg_1", "content": []})
    await builder.item_event("response.compaction.compacting", index)  # type: ignore[arg-type]
    await builder.done_item(index, {"type": "message", "id": "msg_1", "content": [], "status": "completed"})
    await builder.finish()
    assert index == 0 and builder.output[0]["status"] == "completed"
    assert not builder.started and not builder.finished


async def test_the_first_event_opens_the_stream_with_the_response_as_it_began() -> None:
    recording = Recording()
    builder = recording.builder
    index = await builder.add_item({"type": "message", "id": "msg_1", "content": []})
    assert recording.types == ["response.created", "response.in_progress", "response.output_item.added"]
    assert [event["sequence_number"] for event in recording.events] == [0, 1, 2]
    assert recording.events[0]["response"]["output"] == [] and recording.events[2]["output_index"] == index
    await builder.item_event("response.compaction.compacting", index)  # type: ignore[arg-type]
    assert recording.events[-1]["item_id"] == "msg_1"


async def test_a_queued_response_opens_as_queued() -> None:
    recording = Recording({"id": "resp_1", "status": "queued", "output": []})
    await recording.builder.start()
    await recording.builder.start()
    assert recording.types == ["response.created", "response.queued", "response.in_progress"]
    assert [event["response"]["status"] for event in recording.events] == ["queued", "queued", "in_progress"]


async def test_a_response_started_late_still_opens_as_it_began() -> None:
    recording = Recording()
    await recording.builder.add_item({"type": "message", "id": "msg_1"})
    recording.builder.complete()
    recording.events.clear()
    recording.builder.started = False
    await recording.builder.start()
    opening = recording.events[0]["response"]
    assert opening["status"] == "in_progress" and opening["output"] == [] and opening["completed_at"] is None


async def test_the_terminal_event_follows_the_final_status() -> None:
    for settle, kind in (
        (lambda b: b.complete(), "response.completed"),
        (lambda b: b.stop_incomplete({"reason": "max_tool_calls"}), "response.incomplete"),
        (lambda b: b.fail("server_error", "boom"), "response.failed"),
        (lambda b: b.cancel(), "response.completed"),
    ):
        recording = Recording()
        settle(recording.builder)
        await recording.builder.finish()
        assert recording.types[-1] == kind and recording.builder.finished


async def test_abort_ends_with_error_then_failed_once_and_drops_the_recording() -> None:
    sent: list[str] = []

    async def sink(event: dict[str, Any]) -> None:
        sent.append(event["type"])

    recording = Recording()
    recording.builder.emitter.attach(sink)
    await recording.builder.start()
    await recording.builder.abort("server_error", "the database went away")
    await recording.builder.abort("server_error", "again")
    assert sent == ["response.created", "response.in_progress", "error", "response.failed"]
    assert recording.types == ["response.created", "response.in_progress"]
    assert recording.builder.status == "failed"
    assert recording.builder.object["error"] == {"code": "server_error", "message": "the database went away"}


async def test_abort_after_the_terminal_event_changes_nothing() -> None:
    recording = Recording()
    recording.builder.complete()
    await recording.builder.finish()
    await recording.builder.abort("server_error", "late")
    assert recording.builder.status == "completed" and recording.types[-1] == "response.completed"
