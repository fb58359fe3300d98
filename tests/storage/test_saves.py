"""Saving responses, on SQLite and PostgreSQL: one transaction per new response (with its
conversation items on SQLite), concurrent saves that each learn their own outcome, the replace
path, refused text, and a pool that outlives connections the server dropped."""

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa

from corral.storage import NotFound, Store, UnstorableText
from corral.storage.schema import conversation_items, response_items, responses
from tests.fixtures.databases import fresh_postgres_url, terminate_other_sessions

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url)
    yield opened
    await opened.close()


def response(response_id: str, *, status: str = "completed", text: str = "hi") -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1_700_000_000,
        "status": status,
        "model": "m",
        "metadata": {"k": "v \u00e9 \\u0000"},
        "output": [
            {"id": f"msg_{response_id}", "type": "message", "role": "assistant", "content": [{"text": text}]},
            {"id": f"fc_{response_id}", "type": "function_call", "arguments": '{"a": [1, 2.5, null]}'},
        ],
    }


def user(item_id: str, text: str = "hello") -> dict[str, Any]:
    return {"id": item_id, "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


async def save(store: Store, tenant: str, body: dict[str, Any], inputs: list[dict[str, Any]], **kw: Any) -> bool:
    kw.setdefault("previous_response_id", None)
    kw.setdefault("conversation_id", None)
    return await store.responses.save(tenant, body, inputs, **kw)


async def test_a_saved_response_reads_back_whole(store: Store) -> None:
    body = response("resp_whole")
    await save(store, "a", body, [user("in_1"), user("in_2", "nul \x00 inside JSON is fine")])

    assert await store.responses.get("a", "resp_whole") == body
    assert await store.responses.get("b", "resp_whole") is None
    page, more = await store.responses.list_input_items("a", "resp_whole", after=None, limit=10, order="asc")
    assert [item["id"] for item in page] == ["in_1", "in_2"] and not more
    assert page[1]["content"][0]["text"] == "nul \x00 inside JSON is fine"
    assert await store.responses.load_chain("a", "resp_whole") == [user("in_1"), page[1], *body["output"]]
    async with store.engine.connect() as connection:
        row = (await connection.execute(sa.select(responses).where(responses.c.id == "resp_whole"))).one()
    assert (row.tenant, row.status, row.created_at, row.cancel_requested) == ("a", "completed", 1_700_000_000, False)
    assert "output" not in row.body


async def test_a_response_with_no_items_is_saved(store: Store) -> None:
    body = {"id": "resp_empty", "created_at": 2, "status": "in_progress", "output": []}
    await save(store, "a", body, [])
    assert await store.responses.get("a", "resp_empty") == body
    assert await store.responses.load_chain("a", "resp_empty") == []


async def test_saving_again_replaces_the_output_and_keeps_the_input(store: Store) -> None:
    await save(store, "a", response("resp_again", status="in_progress", text="partial"), [user("in_a")])
    await save(store, "a", response("resp_again", text="final"), [user("in_changed")])

    stored = await store.responses.get("a", "resp_again")
    assert stored is not None and stored["status"] == "completed"
    assert stored["output"][0]["content"][0]["text"] == "final"
    assert (await store.responses.load_chain("a", "resp_again"))[0]["id"] == "in_a"
    with pytest.raises(NotFound):
        await save(store, "b", response("resp_again"), [])


async def test_concurrent_saves_each_learn_their_own_outcome(store: Store) -> None:
    await save(store, "a", response("resp_taken"), [user("in_taken")])
    saves = [save(store, "a", response(f"resp_c{n}"), [user(f"in_c{n}")]) for n in range(12)]
    saves.insert(5, save(store, "b", response("resp_taken"), []))
    saves.insert(9, save(store, "a", response("resp_taken", text="again"), []))

    outcomes = await asyncio.gather(*saves, return_exceptions=True)

    assert isinstance(outcomes[5], NotFound)
    assert [outcome for n, outcome in enumerate(outcomes) if n != 5] == [False] * 13
    for n in range(12):
        stored = await store.responses.get("a", f"resp_c{n}")
        assert stored is not None and stored["id"] == f"resp_c{n}"
    again = await store.responses.get("a", "resp_taken")
    assert again is not None and again["output"][0]["content"][0]["text"] == "again"


async def test_text_with_a_nul_is_refused_and_nothing_is_stored(store: Store) -> None:
    with pytest.raises(UnstorableText):
        await save(store, "a", response("resp_nul"), [user("in_\x00")])
    with pytest.raises(UnstorableText):
        await save(store, "a\x00", response("resp_nul"), [])
    assert await store.responses.get("a", "resp_nul") is None
    async with store.engine.connect() as connection:
        left = await connection.scalar(sa.select(sa.func.count()).where(response_items.c.response_id == "resp_nul"))
    assert left == 0


async def join(store: Store, tenant: str, conversation_id: str, body: dict[str, Any], inputs: list[Any]) -> None:
    """What `responses.persist` does: the save, then the conversation items unless it took them."""
    items = [*inputs, *body["output"]]
    joined = await save(store, tenant, body, inputs, conversation_id=conversation_id, conversation_items=items)
    if not joined:
        await store.conversations.add_items(tenant, conversation_id, items)


async def test_conversation_items_follow_the_response_in_order(store: Store) -> None:
    conversation = await store.conversations.create("a", metadata={}, items=[user("in_seed")])
    first, second = response("resp_j1"), response("resp_j2")
    await join(store, "a", conversation["id"], first, [user("in_j1")])
    await join(store, "a", conversation["id"], second, [user("in_j2")])

    items = await store.conversations.load_items("a", conversation["id"])
    assert [item["id"] for item in items] == [
        "in_seed",
        "in_j1",
        "msg_resp_j1",
        "fc_resp_j1",
        "in_j2",
        "msg_resp_j2",
        "fc_resp_j2",
    ]
    assert items[2] == first["output"][0]
    async with store.engine.connect() as connection:
        positions = (
            await connection.scalars(
                sa.select(conversation_items.c.position)
                .where(conversation_items.c.conversation_id == conversation["id"])
                .order_by(conversation_items.c.position)
            )
        ).all()
    assert list(positions) == list(range(7))
    stored = await store.responses.get("a", "resp_j2")
    assert stored is not None


async def test_concurrent_conversation_saves_stay_contiguous(store: Store) -> None:
    conversation = await store.conversations.create("a", metadata={}, items=[])
    await asyncio.gather(
        *(join(store, "a", conversation["id"], response(f"resp_cc{n}"), [user(f"in_cc{n}")]) for n in range(8))
    )
    items = await store.conversations.load_items("a", conversation["id"])
    assert len(items) == 24
    for start in range(0, 24, 3):
        n = items[start]["id"].removeprefix("in_cc")
        assert [item["id"] for item in items[start : start + 3]] == [f"in_cc{n}", f"msg_resp_cc{n}", f"fc_resp_cc{n}"]


async def test_a_gone_conversation_is_not_found_and_the_response_stays(store: Store) -> None:
    conversation = await store.conversations.create("a", metadata={}, items=[])
    await store.conversations.delete("a", conversation["id"])
    with pytest.raises(NotFound):
        await join(store, "a", conversation["id"], response("resp_gone"), [user("in_gone")])
    with pytest.raises(NotFound):
        await join(store, "b", "conv_missing", response("resp_gone_b"), [])
    assert await store.responses.get("a", "resp_gone") is not None
    assert await store.responses.get("b", "resp_gone_b") is not None


def _terminate_blocking(url: str) -> int:
    """The same from another thread, while this loop does not run: the pooled connections cannot
    notice before their next statement."""
    result: list[int] = []

    def target() -> None:
        result.append(asyncio.run(terminate_other_sessions(url)))

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    return result[0]


@pytest.mark.postgres
@pytest.mark.parametrize("noticed", [True, False], ids=["seen-closed", "unseen"])
async def test_requests_succeed_after_the_server_cut_every_pooled_connection(noticed: bool) -> None:
    """Without `pool_pre_ping`: a connection the client saw close is replaced at checkout; one it
    did not see yet fails its first statement and the read or save is run once more."""
    with fresh_postgres_url() as url:
        store = await Store.open(url)
        try:
            await asyncio.gather(*(save(store, "a", response(f"resp_k{n}"), [user(f"in_k{n}")]) for n in range(4)))
            assert await store.responses.get("a", "resp_k0") is not None
            if noticed:
                assert await terminate_other_sessions(url) >= 1
                await asyncio.sleep(0.05)
                # a store with no retry of its own: the checkout replaces the closed connection
                assert (await store.conversations.create("a", metadata={}, items=[]))["id"]
            else:
                assert _terminate_blocking(url) >= 1

            assert await store.responses.get("a", "resp_k1") is not None
            await save(store, "a", response("resp_after"), [user("in_after")], previous_response_id="resp_k2")
            assert [item["id"] for item in await store.responses.load_chain("a", "resp_after")][-2:] == [
                "msg_resp_after",
                "fc_resp_after",
            ]
            if not noticed:
                assert _terminate_blocking(url) >= 1
            await save(store, "a", response("resp_after2"), [user("in_after2")], previous_response_id="resp_after")
            assert await store.responses.get("a", "resp_after2") is not None
        finally:
            await store.close()
