"""`input_file` and `input_image` parts in responses: a PDF reaching a Chat Completions model as
text, files by id resolved for Responses upstreams, file URLs fetched from a (local) server, the
caller's input stored as sent, and another tenant's file id a 404."""

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import Gateway, start_gateway
from tests.files.conftest import KEY_A, KEY_B, file_auth
from tests.support.mock import MockUpstream
from tests.support.servers import serve_in_thread

REVENUE = "Quarterly revenue was 4242 dollars"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def make_pdf(*pages: str) -> bytes:
    """A PDF with one line of Helvetica text per page, written by hand (offsets counted)."""
    count = len(pages)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(f"{4 + 2 * i} 0 R".encode() for i in range(count))
        + f"] /Count {count} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for index, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * index} 0 R >>".encode()
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


@pytest.fixture(scope="module", params=["chat", "responses"])
def files_gateway(
    request: pytest.FixtureRequest, mock_upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with start_gateway(
        mock_upstream, tmp_path_factory.mktemp(f"inputs-{request.param}"), api=request.param, auth=file_auth()
    ) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def file_server() -> Iterator[str]:
    async def report(_: Any) -> Response:
        return Response(make_pdf(REVENUE), media_type="application/pdf")

    async def missing(_: Any) -> Response:
        return Response("no", status_code=404)

    app = Starlette(routes=[Route("/docs/report.pdf", report), Route("/docs/missing.pdf", missing)])
    with serve_in_thread(app) as base:
        yield base


def last_upstream_body(mock: MockUpstream) -> dict[str, Any]:
    return mock.bodies()[-1]


def user_parts(body: dict[str, Any]) -> list[Any]:
    """The content of the last user message the upstream got, as a list of parts."""
    entries = body.get("messages") or body.get("input") or []
    content = next(e for e in reversed(entries) if e.get("role") == "user")["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def is_chat(gateway: Gateway) -> bool:
    return gateway.settings.upstreams[0].api == "chat"


def test_pdf_by_file_id_reaches_the_model(files_gateway: Gateway, mock: MockUpstream) -> None:
    client = files_gateway.client(api_key=KEY_A)
    pdf = make_pdf(REVENUE, "Second page: costs were 1000")
    uploaded = client.files.create(file=("report.pdf", pdf, "application/pdf"), purpose="user_data")
    response = client.responses.create(
        model="mock-model",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What was the revenue?"},
                    {"type": "input_file", "file_id": uploaded.id},
                ],
            }
        ],
    )
    assert response.status == "completed"
    parts = user_parts(last_upstream_body(mock))
    if is_chat(files_gateway):
        text = "\n".join(p["text"] for p in parts if p.get("type") == "text")
        assert REVENUE in text and "costs were 1000" in text, "the PDF reached the chat model as its text"
        assert "[file report.pdf (PDF, text extracted)]" in text and "--- page 2 ---" in text
    else:
        sent = next(p for p in parts if p["type"] == "input_file")
        assert sent == {
            "type": "input_file",
            "filename": "report.pdf",
            "file_data": "data:application/pdf;base64," + base64.b64encode(pdf).decode(),
        }, "a Corral file id means nothing upstream: it is sent as data"
    stored = client.responses.input_items.list(response.id)
    stored_parts = stored.data[0].content  # type: ignore[union-attr]
    assert stored_parts[1].type == "input_file" and stored_parts[1].file_id == uploaded.id  # type: ignore[union-attr]
    assert getattr(stored_parts[1], "file_data", None) is None, "the caller's input is stored as sent"


def test_history_keeps_reading_the_file(files_gateway: Gateway, mock: MockUpstream) -> None:
    client = files_gateway.client(api_key=KEY_A)
    notes = client.files.create(file=("notes.txt", b"the code word is heron"), purpose="user_data")
    first = client.responses.create(
        model="mock-model", input=[{"role": "user", "content": [{"type": "input_file", "file_id": notes.id}]}]
    )
    client.responses.create(model="mock-model", input="and again?", previous_response_id=first.id)
    parts = [
        part
        for entry in (last_upstream_body(mock).get("messages") or last_upstream_body(mock)["input"])
        if entry.get("role") == "user" and isinstance(entry["content"], (list, str))
        for part in (entry["content"] if isinstance(entry["content"], list) else [{"text": entry["content"]}])
    ]
    blob = str(parts)
    if is_chat(files_gateway):
        assert "the code word is heron" in blob
    else:
        assert base64.b64encode(b"the code word is heron").decode() in blob


def test_inline_pdf_and_file_url(files_gateway: Gateway, mock: MockUpstream, file_server: str) -> None:
    client = files_gateway.client(api_key=KEY_A)
    inline = "data:application/pdf;base64," + base64.b64encode(make_pdf("Inline says 777")).decode()
    client.responses.create(
        model="mock-model",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_file", "filename": "inline.pdf", "file_data": inline},
                    {"type": "input_file", "file_url": f"{file_server}/docs/report.pdf"},
                ],
            }
        ],
    )
    parts = user_parts(last_upstream_body(mock))
    if is_chat(files_gateway):
        text = "\n".join(p["text"] for p in parts if p.get("type") == "text")
        assert "Inline says 777" in text and REVENUE in text and "[file report.pdf" in text
    else:
        assert parts[0]["file_data"] == inline, "Responses upstreams get inline files as they are"
        assert parts[1] == {"type": "input_file", "file_url": f"{file_server}/docs/report.pdf"}
    if is_chat(files_gateway):
        mock.clear()
        with pytest.raises(openai.BadRequestError) as unreachable:
            client.responses.create(
                model="mock-model",
                input=[
                    {"role": "user", "content": [{"type": "input_file", "file_url": f"{file_server}/docs/missing.pdf"}]}
                ],
            )
        assert unreachable.value.body["param"] == "input[0].content[0].file_url"  # type: ignore[index]
        assert mock.requests() == []


def test_image_by_file_id(files_gateway: Gateway, mock: MockUpstream) -> None:
    client = files_gateway.client(api_key=KEY_A)
    image = client.files.create(file=("dot.png", PNG, "image/png"), purpose="vision")
    client.responses.create(
        model="mock-model",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "file_id": image.id, "detail": "low"},
                ],
            }
        ],
    )
    parts = user_parts(last_upstream_body(mock))
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    if is_chat(files_gateway):
        assert {"type": "image_url", "image_url": {"url": url, "detail": "low"}} in parts
    else:
        assert {"type": "input_image", "image_url": url, "detail": "low"} in parts


def test_another_tenants_file_id_is_a_404_and_no_model_call(files_gateway: Gateway, mock: MockUpstream) -> None:
    a = files_gateway.client(api_key=KEY_A)
    b = files_gateway.client(api_key=KEY_B)
    secret = a.files.create(file=("secret.txt", b"team a only"), purpose="user_data")
    mock.clear()
    for part in ({"type": "input_file", "file_id": secret.id}, {"type": "input_image", "file_id": secret.id}):
        with pytest.raises(openai.NotFoundError) as caught:
            b.responses.create(model="mock-model", input=[{"role": "user", "content": [part]}])  # type: ignore[list-item]
        assert caught.value.body["param"] == "input[0].content[0].file_id"  # type: ignore[index]
    assert mock.requests() == []


def test_pdf_helper_is_readable(tmp_path: Path) -> None:
    import pypdf

    path = tmp_path / "x.pdf"
    path.write_bytes(make_pdf("hello pdf"))
    assert "hello pdf" in pypdf.PdfReader(path).pages[0].extract_text()
