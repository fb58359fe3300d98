"""The stores directly, on SQLite and PostgreSQL: tenancy, bounded chain queries, concurrency, locks."""

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import sqlalchemy as sa

from corral.storage import NotFound, Store

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url)
    yield opened
    await opened.close()


def response(response_id: str) -> dict:
    return {
        "id": response_id,
        "created_at": 1,
        "status": "completed",
        "output": [{"id": f"out_{response_id}", "type": "message"}],
    }


async def chain(store: Store, length: int, tenant: str = "a") -> str:
    previous = None
    for turn in range(length):
        await store.responses.save(
            tenant,
            response(f"r{turn}"),
            [{"id": f"in_r{turn}", "type": "message"}],
            previous_response_id=previous,
            conversation_id=None,
        )
        previous = f"r{turn}"
    return previous or ""


async def test_chain_loads_in_order_with_a_bounded_number_of_statements(store: Store) -> None:
    newest = await chain(store, 200)
    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    sa.event.listen(store.engine.sync_engine, "before_cursor_execute", count)
    items = await store.responses.load_chain("a", newest)
    sa.event.remove(store.engine.sync_engine, "before_cursor_execute", count)
    assert [item["id"] for item in items[:4]] == ["in_r0", "out_r0", "in_r1", "out_r1"]
    assert len(items) == 400
    assert statements <= 2


async def test_every_store_hides_other_tenants(store: Store) -> None:
    await chain(store, 2, tenant="a")
    assert await store.responses.get("b", "r1") is None
    assert not await store.responses.delete("b", "r1")
    with pytest.raises(NotFound):
        await store.responses.load_chain("b", "r1")
    with pytest.raises(NotFound):
        await store.responses.list_input_items("b", "r1", after=None, limit=10, order="asc")
    conversation = await store.conversations.create("a", metadata={}, items=[{"id": "c1"}])
    assert await store.conversations.get("b", conversation["id"]) is None
    with pytest.raises(NotFound):
        await store.conversations.add_items("b", conversation["id"], [{"id": "x"}])
    assert await store.conversations.get_item("b", conversation["id"], "c1") is None
    record = {
        "id": "cntr_1", "name": "n", "status": "running", "created_at": 1, "last_active_at": 1,
        "expires_after_minutes": 20, "memory_limit": "1g", "backend": "local",
    }  # fmt: skip
    await store.containers.create("a", record)
    assert await store.containers.get("b", "cntr_1") is None
    assert (await store.containers.list_page("b", after=None, limit=10, order="desc"))[0] == []
    assert not await store.containers.delete("b", "cntr_1")


async def test_concurrent_appends_keep_each_call_contiguous(store: Store, database_url: str) -> None:
    conversation = await store.conversations.create("a", metadata={}, items=[])
    others = [store] if database_url.startswith("sqlite") else [store, await Store.open(database_url, migrate=False)]

    async def writer(index: int) -> None:
        target = others[index % len(others)]
        await target.conversations.add_items("a", conversation["id"], [{"id": f"w{index}-{n}"} for n in range(3)])

    await asyncio.gather(*(writer(index) for index in range(20)))
    items = await store.conversations.load_items("a", conversation["id"])
    ids = [item["id"] for item in items]
    assert len(ids) == 60 and len(set(ids)) == 60
    for index in range(20):
        start = ids.index(f"w{index}-0")
        assert ids[start : start + 3] == [f"w{index}-{n}" for n in range(3)]
    for extra in others[1:]:
        await extra.close()


async def test_named_lock_excludes_across_engines(store: Store, database_url: str) -> None:
    other = store if database_url.startswith("sqlite") else await Store.open(database_url, migrate=False)
    inside = 0
    most = 0

    async def hold(target: Store) -> None:
        nonlocal inside, most
        async with target.lock("chain-1"):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.02)
            inside -= 1

    await asyncio.gather(*(hold(store if n % 2 else other) for n in range(6)))
    assert most == 1
    if other is not store:
        await other.close()


async def test_reopening_migrates_idempotently_and_keeps_data(database_url: str) -> None:
    first = await Store.open(database_url)
    await chain(first, 1)
    await first.close()
    second = await Store.open(database_url)
    assert (await second.responses.get("a", "r0"))["output"][0]["id"] == "out_r0"  # type: ignore[index]
    await second.close()


async def test_chain_stops_at_a_missing_or_foreign_parent_and_keeps_empty_responses(store: Store) -> None:
    """The one-query chain keeps load_chain's edges: a response with no items still counts (an
    empty list, not NotFound); the chain stops at a deleted parent and at another tenant's."""
    await store.responses.save("a", {"id": "e0", "created_at": 1, "status": "failed", "output": []}, [],
                               previous_response_id=None, conversation_id=None)  # fmt: skip
    assert await store.responses.load_chain("a", "e0") == []
    await store.responses.save("a", response("e1"), [{"id": "in_e1", "type": "message"}],
                               previous_response_id="e0", conversation_id=None)  # fmt: skip
    assert [item["id"] for item in await store.responses.load_chain("a", "e1")] == ["in_e1", "out_e1"]

    newest = await chain(store, 4)
    assert await store.responses.delete("a", "r1")
    assert [item["id"] for item in await store.responses.load_chain("a", newest)] == [
        "in_r2", "out_r2", "in_r3", "out_r3"
    ]  # fmt: skip

    await store.responses.save("b", response("f0"), [{"id": "in_f0", "type": "message"}],
                               previous_response_id=None, conversation_id=None)  # fmt: skip
    await store.responses.save("a", response("f1"), [{"id": "in_f1", "type": "message"}],
                               previous_response_id="f0", conversation_id=None)  # fmt: skip
    assert [item["id"] for item in await store.responses.load_chain("a", "f1")] == ["in_f1", "out_f1"]
    with pytest.raises(NotFound):
        await store.responses.load_chain("a", "f0")
    with pytest.raises(NotFound):
        await store.responses.load_chain("a", "nope")


async def test_chain_items_keep_their_order_and_values(store: Store) -> None:
    """Several inputs and outputs per response, oldest response first, inputs before outputs, each
    part in position order; values (unicode, NUL escapes, nesting) come back as stored."""
    tricky = {"id": "in_t0_0", "type": "message", "content": [{"type": "input_text", "text": "é \u0000 \U0001f600"}]}
    await store.responses.save(
        "a",
        {"id": "t0", "created_at": 1, "status": "completed",
         "output": [{"id": "out_t0_0", "type": "reasoning"}, {"id": "out_t0_1", "type": "message", "n": [1, 2.5]}]},
        [tricky, {"id": "in_t0_1", "type": "message"}],
        previous_response_id=None, conversation_id=None,
    )  # fmt: skip
    await store.responses.save(
        "a", response("t1"), [{"id": "in_t1_0", "type": "function_call_output", "output": None}],
        previous_response_id="t0", conversation_id=None,
    )  # fmt: skip
    items = await store.responses.load_chain("a", "t1")
    assert [item["id"] for item in items] == ["in_t0_0", "in_t0_1", "out_t0_0", "out_t0_1", "in_t1_0", "out_t1"]
    assert items[0] == tricky
    assert items[3]["n"] == [1, 2.5] and items[4]["output"] is None
