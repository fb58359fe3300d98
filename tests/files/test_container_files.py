"""Files handed to containers by id: a CSV uploaded with `client.files` and analysed by
code_interpreter, through `file_ids` on an `auto` container and on an explicit one."""

from collections.abc import Iterator

import openai
import pytest

from corral.storage import Store
from tests.conftest import Gateway
from tests.fixtures.databases import _run as run_private
from tests.support.mock import MockUpstream, call, sent_texts
from tests.support.sandboxed import sandboxed_gateway

pytestmark = pytest.mark.sandbox

SALES = b"region,sales\nnorth,10\nsouth,32\neast,17\n"
SUM_SALES = "import csv; print(sum(int(r['sales']) for r in csv.DictReader(open('/mnt/data/sales.csv'))))"


@pytest.fixture(scope="module")
def sandboxed(
    mock_upstream: MockUpstream, sandbox_python: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with sandboxed_gateway(
        "local", mock_upstream, sandbox_python, tmp_path_factory.mktemp("files-sandboxed")
    ) as gateway:
        yield gateway


def test_csv_by_file_ids_on_an_auto_container(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    sales = client.files.create(file=("sales.csv", SALES, "text/csv"), purpose="user_data")
    tool = {"type": "code_interpreter", "container": {"type": "auto", "file_ids": [sales.id]}}
    response = client.responses.create(model="mock-model", input=call("python", code=SUM_SALES), tools=[tool])  # type: ignore[list-item]
    assert response.output_text == "Done. Last tool output: 59"
    first_request = mock.bodies()[0]
    assert any("/mnt/data/sales.csv" in text for text in sent_texts(first_request)), "listed in the injected context"

    container_id = next(i for i in response.output if i.type == "code_interpreter_call").container_id
    listed = client.containers.files.list(container_id)
    assert [(f.path, f.bytes, f.source) for f in listed] == [("/mnt/data/sales.csv", len(SALES), "user")]
    assert list(linked_files(sandboxed, container_id)) == [sales.id], "the container file keeps a link to its source"

    again = client.responses.create(
        model="mock-model",
        input=call("python", code="import os; print(len(os.listdir('/mnt/data')))"),
        tools=[tool],  # type: ignore[list-item]
        previous_response_id=response.id,
    )
    assert again.output_text == "Done. Last tool output: 1", "a reused container is not given the file twice"
    assert next(i for i in again.output if i.type == "code_interpreter_call").container_id == container_id


def test_csv_by_file_ids_on_an_explicit_container(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    sales = client.files.create(file=("sales.csv", SALES, "text/csv"), purpose="user_data")
    notes = client.files.create(file=("notes.txt", b"north is cold", "text/plain"), purpose="user_data")
    container = client.containers.create(name="analysis", file_ids=[sales.id])
    assert [f.path for f in client.containers.files.list(container.id)] == ["/mnt/data/sales.csv"]
    added = client.containers.files.create(container.id, file_id=notes.id)
    assert (added.path, added.bytes, added.source) == ("/mnt/data/notes.txt", 13, "user")
    assert client.containers.files.content.retrieve(added.id, container_id=container.id).read() == b"north is cold"

    tool = {"type": "code_interpreter", "container": container.id}
    response = client.responses.create(model="mock-model", input=call("python", code=SUM_SALES), tools=[tool])  # type: ignore[list-item]
    assert response.output_text == "Done. Last tool output: 59"
    assert set(linked_files(sandboxed, container.id)) == {sales.id, notes.id}
    client.containers.files.delete(added.id, container_id=container.id)
    assert set(linked_files(sandboxed, container.id)) == {sales.id}, "a deleted container file loses its link"
    client.containers.delete(container.id)
    assert linked_files(sandboxed, container.id) == {}, "a deleted container leaves no links behind"
    assert client.files.content(sales.id).content == SALES, "the source file outlives the container"


def test_unknown_file_ids_fail_before_any_container_is_made(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    before = [c.id for c in client.containers.list()]
    with pytest.raises(openai.NotFoundError) as explicit:
        client.containers.create(name="nope", file_ids=["file-missing"])
    assert explicit.value.body["param"] == "file_ids[0]"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as auto:
        client.responses.create(
            model="mock-model",
            input="x",
            tools=[{"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["file-missing"]}}],
        )
    assert auto.value.code == "stateful_tool_bootstrap_failed"
    with pytest.raises(openai.BadRequestError):
        client.containers.create(name="bad", file_ids="file-x")  # type: ignore[arg-type]
    assert [c.id for c in client.containers.list()] == before
    assert mock.requests() == []


def linked_files(gateway: Gateway, container_id: str) -> dict[str, str]:
    """{file id: container file id} as recorded in the gateway's database."""

    async def read() -> dict[str, str]:
        store = await Store.open(gateway.settings.database_url(), migrate=False)
        try:
            return await store.files.linked(container_id)
        finally:
            await store.close()

    return run_private(read())
