"""The Conversations API and responses created in a conversation."""

import concurrent.futures

import openai
import pytest

from tests.conftest import Gateway
from tests.support.mock import MockUpstream


def test_conversation_crud(stateful: Gateway, mock: MockUpstream) -> None:
    client = stateful.client()
    conversation = client.conversations.create(metadata={"topic": "demo"}, items=[{"role": "user", "content": "hi"}])
    assert conversation.id.startswith("conv_") and conversation.metadata == {"topic": "demo"}
    assert client.conversations.retrieve(conversation.id).id == conversation.id
    updated = client.conversations.update(conversation.id, metadata={"topic": "changed"})
    assert updated.metadata == {"topic": "changed"}
    deleted = client.conversations.delete(conversation.id)
    assert deleted.deleted is True
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conversation.id)


def test_items_create_list_retrieve_delete(stateful: Gateway, mock: MockUpstream) -> None:
    client = stateful.client()
    conversation = client.conversations.create()
    created = client.conversations.items.create(
        conversation.id,
        items=[{"role": "user", "content": f"m{i}"} for i in range(3)],  # type: ignore[misc]
    )
    assert len(created.data) == 3
    listed = list(client.conversations.items.list(conversation.id, order="asc", limit=2))
    assert [item.content[0].text for item in listed] == ["m0", "m1", "m2"]  # type: ignore[union-attr]
    one = client.conversations.items.retrieve(listed[1].id, conversation_id=conversation.id)
    assert one.id == listed[1].id
    after_delete = client.conversations.items.delete(listed[1].id, conversation_id=conversation.id)
    assert after_delete.id == conversation.id
    assert len(client.conversations.items.list(conversation.id).data) == 2
    with pytest.raises(openai.BadRequestError):
        client.conversations.items.create(conversation.id, items=[{"role": "user", "content": "x"}] * 21)  # type: ignore[list-item]


def test_responses_in_a_conversation_replay_and_append(stateful: Gateway, mock: MockUpstream) -> None:
    client = stateful.client()
    conversation = client.conversations.create(items=[{"role": "user", "content": "seed"}])
    first = client.responses.create(model="mock-model", input="alpha", conversation=conversation.id)
    assert first.conversation is not None and first.conversation.id == conversation.id
    second = client.responses.create(model="mock-model", input="beta", conversation={"id": conversation.id})
    assert second.output_text == "You said: beta"
    items = list(client.conversations.items.list(conversation.id, order="asc"))
    texts = [item.content[0].text for item in items]  # type: ignore[union-attr]
    assert texts == ["seed", "alpha", "You said: alpha", "beta", "You said: beta"]


def test_unknown_conversation_is_404(stateful: Gateway, mock: MockUpstream) -> None:
    with pytest.raises(openai.NotFoundError):
        stateful.client().responses.create(model="mock-model", input="x", conversation="conv_missing")
    assert mock.requests() == []


def test_concurrent_responses_on_one_conversation_lose_nothing(stateful: Gateway, mock: MockUpstream) -> None:
    client = stateful.client()
    conversation = client.conversations.create()

    def say(index: int) -> None:
        client.responses.create(model="mock-model", input=f"n{index}", conversation=conversation.id)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(say, range(16)))
    items = list(client.conversations.items.list(conversation.id, order="asc", limit=100))
    texts = [item.content[0].text for item in items]  # type: ignore[union-attr]
    assert len(texts) == 32
    for index in range(16):
        position = texts.index(f"n{index}")
        assert texts[position + 1] == f"You said: n{index}", "each response's items stay together"
