"""Compaction through the openai SDK, over both upstream kinds: `client.responses.compact` returns
the window's user messages and one sealed `compaction` item, the item expands to its summary in
later requests (stateless or chained), a forged item is refused, and `context_management`
compacts on its own past its threshold."""

from typing import Any

import openai
import pytest

from corral.responses.history import SUMMARY_PREFIX
from tests.conftest import Gateway
from tests.support.mock import MockUpstream, sent_texts

LONG = " ".join(f"word{n}" for n in range(1500))


def summary_requests(mock: MockUpstream) -> list[dict[str, Any]]:
    return [body for body in mock.bodies() if any("Summarize the conversation below." in t for t in sent_texts(body))]


def model_texts(mock: MockUpstream) -> list[str]:
    """What the last model call (not a summary request) was sent."""
    calls = [body for body in mock.bodies() if body not in summary_requests(mock)]
    return sent_texts(calls[-1])


def as_input(items: list[Any]) -> list[dict[str, Any]]:
    return [item.model_dump(exclude_none=True) for item in items]


def test_compact_returns_user_messages_and_a_sealed_item(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    first = client.responses.create(model="mock-model", input="My favourite fruit is pineapple")
    second = client.responses.create(model="mock-model", input="I live in Oslo", previous_response_id=first.id)
    mock.clear()
    compacted = client.responses.compact(model="mock-model", previous_response_id=second.id)
    assert compacted.object == "response.compaction" and compacted.usage.total_tokens > 0
    *users, item = compacted.output
    assert [(u.type, u.role, u.content[0].text) for u in users] == [  # type: ignore[union-attr]
        ("message", "user", "My favourite fruit is pineapple"),
        ("message", "user", "I live in Oslo"),
    ]
    assert item.type == "compaction" and item.id.startswith("cmp_")
    assert "pineapple" not in item.encrypted_content and "Summary" not in item.encrypted_content
    (summary_call,) = mock.bodies()
    assert "You said: My favourite fruit is pineapple" in str(summary_call)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(compacted.id)


def test_a_compaction_item_expands_to_its_summary(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    compacted = client.responses.compact(
        model="mock-model",
        input=[
            {"role": "user", "content": "Remember the code 7731"},
            {"role": "assistant", "content": "Noted: 7731."},
            {"role": "user", "content": "And the colour teal"},
            {"role": "assistant", "content": "Noted: teal."},
        ],
    )
    window = as_input(compacted.output)
    answered = client.responses.create(
        model="mock-model", input=[*window, {"role": "user", "content": "What did I tell you?"}], store=False
    )
    assert answered.output_text == "You said: What did I tell you?"
    texts = model_texts(mock)
    assert texts[:2] == ["Remember the code 7731", "And the colour teal"]
    assert texts[2].startswith(SUMMARY_PREFIX) and "Noted: 7731." in texts[2]
    assert texts[3:] == ["What did I tell you?"]

    chained = client.responses.create(model="mock-model", input=[*window, {"role": "user", "content": "Stored"}])
    client.responses.create(model="mock-model", input="Next", previous_response_id=chained.id)
    texts = model_texts(mock)
    assert texts[2].startswith(SUMMARY_PREFIX) and texts[3:] == ["Stored", "You said: Stored", "Next"]
    assert "Noted: teal." not in texts


def test_a_forged_or_altered_item_is_refused(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    compacted = client.responses.compact(model="mock-model", input="Keep this")
    user, item = as_input(compacted.output)
    sealed = item["encrypted_content"]
    altered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    mock.clear()
    for forged in (altered, "gAAAAAnot-ours", ""):
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.create(model="mock-model", input=[user, {**item, "encrypted_content": forged}])
        assert refused.value.code == "invalid_encrypted_content"
        assert refused.value.param == "input[1].encrypted_content"
    with pytest.raises(openai.BadRequestError) as missing:
        client.responses.create(model="mock-model", input=[{"type": "compaction", "id": "cmp_1"}])
    assert missing.value.code == "missing_required_parameter"
    assert mock.requests() == []


def test_context_management_compacts_past_the_threshold(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    management = [{"type": "compaction", "compact_threshold": 1000}]
    small = client.responses.create(model="mock-model", input="short", context_management=management)
    assert [item.type for item in small.output] == ["message"] and not summary_requests(mock)

    first = client.responses.create(model="mock-model", input=f"Here is a long text: {LONG}")
    mock.clear()
    stream = client.responses.create(
        model="mock-model",
        input="What was it about?",
        previous_response_id=first.id,
        context_management=management,
        stream=True,
    )
    events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.compaction.compacting",
        "response.output_item.done",
    ]
    done = events[-1].response
    assert [item.type for item in done.output] == ["compaction", "message"]
    assert done.output_text == "You said: What was it about?"
    assert len(summary_requests(mock)) == 1
    texts = model_texts(mock)
    assert texts[0].startswith("Here is a long text") and texts[1].startswith(SUMMARY_PREFIX)
    assert texts[2:] == ["What was it about?"]

    client.responses.create(model="mock-model", input="And now?", previous_response_id=done.id)
    texts = model_texts(mock)
    assert texts[0].startswith("Here is a long text") and texts[1].startswith(SUMMARY_PREFIX)
    assert texts[2:] == ["What was it about?", "You said: What was it about?", "And now?"]


@pytest.mark.parametrize(
    ("management", "param", "code"),
    [
        ([{"type": "truncate"}], "context_management[0].type", "invalid_value"),
        (
            [{"type": "compaction", "compact_threshold": 10}],
            "context_management[0].compact_threshold",
            "integer_below_min_value",
        ),
        ([{"type": "compaction", "limit": 2000}], "context_management[0].limit", "unknown_parameter"),
    ],
)
def test_bad_context_management_is_refused(
    gateway: Gateway, mock: MockUpstream, management: list[dict[str, Any]], param: str, code: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        gateway.client().responses.create(model="mock-model", input="x", context_management=management)  # type: ignore[arg-type]
    assert (refused.value.param, refused.value.code) == (param, code)


def test_bad_compact_requests(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    with pytest.raises(openai.BadRequestError) as missing:
        client.responses.compact(model="mock-model", input="x", previous_response_id="resp_nope")
    assert missing.value.code == "previous_response_not_found"
    with pytest.raises(openai.NotFoundError) as model:
        client.responses.compact(model="no-such-model", input="x")
    assert model.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as unknown:
        client.responses.compact(model="mock-model", input="x", extra_body={"tools": []})
    assert unknown.value.code == "unknown_parameter"
    with pytest.raises(openai.BadRequestError) as empty:
        client.responses.compact(model="mock-model")
    assert empty.value.param == "input"
    assert mock.requests() == []
