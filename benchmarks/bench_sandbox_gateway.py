"""code_interpreter through the gateway: what a warm-pool container and a reused one add to a request.

    .venv/bin/python benchmarks/bench_sandbox_gateway.py [--rounds 30] [--first 8]

Needs root, bubblewrap and the sandbox interpreter (`./scripts/setup.sh --sandbox`). Starts, in one
run, a canned upstream (this file with `--upstream`: raw asyncio like `fast_upstream.py`; it calls
`python` once when the last user message says `run: <code>` and code_interpreter is offered, and
answers with text once the call's output is back) and one gateway process with local bubblewrap
sandboxes (SQLite, a warm pool of 2). Then, at c=1, the p50 of:
- a plain request (no tools, `store: false`): one upstream call;
- a first request with `container: {type: auto}` (stored): the container comes from the warm
  pool, `x = 1` runs in it, two upstream calls. Each sample waits for the pool to refill and
  deletes its container afterwards;
- a follow-up on that chain (`previous_response_id`, `store: false`, so the chain stays the
  same): the container is found in the history and reused, `x = 1` runs, two upstream calls.
Each is printed as ms added over the plain request from the same run; the canned upstream's own
p50 per call is printed too (the tool requests make one call more than the plain one).
"""

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from tests.support.servers import free_port  # noqa: E402

import fast_upstream  # noqa: E402
from bench_gateway import process  # noqa: E402

MODEL = "mock-model"
AUTO = {"type": "code_interpreter", "container": {"type": "auto"}}
CODE = "x = 1"


# The canned upstream ------------------------------------------------------------------------


class ScriptedAnswers:
    """`fast_upstream.Answers` with one script: `run: <code>` → a `python` call, its output → text."""

    def __init__(self) -> None:
        self.plain = fast_upstream.Answers(1)
        self.ids = itertools.count()

    def answer(self, method: bytes, path: bytes, body: bytes) -> bytes:
        if method == b"GET" or path != b"/v1/responses" or b'"stream":true' in body:
            return self.plain.answer(method, path, body)
        request = orjson.loads(body)
        items = request.get("input")
        items = [{"role": "user", "content": items}] if isinstance(items, str) else items or []
        last = items[-1] if items else {}
        offered = any(tool.get("name") == "python" for tool in request.get("tools") or [])
        code = _run_code(last) if offered else None
        number = next(self.ids)
        if code is not None:
            output: dict[str, Any] = {
                "type": "function_call",
                "id": f"fc_{number:024x}",
                "call_id": f"call_{number:024x}",
                "name": "python",
                "arguments": orjson.dumps({"code": code}).decode(),
                "status": "completed",
            }
        else:
            text = "done" if last.get("type") == "function_call_output" else "hello"
            output = {
                "type": "message",
                "id": f"msg_{number:024x}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
            }
        response = {
            "id": f"resp_{number:024x}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "error": None,
            "incomplete_details": None,
            "model": MODEL,
            "output": [output],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": 5,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 1,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 6,
            },
        }
        return fast_upstream._http(orjson.dumps(response), b"application/json")


def _run_code(item: dict[str, Any]) -> str | None:
    if item.get("role") != "user":
        return None
    content = item.get("content")
    text = content if isinstance(content, str) else " ".join(str(p.get("text", "")) for p in content or [])
    return text[len("run: ") :] if text.startswith("run: ") else None


async def serve_upstream(port: int) -> None:
    answers = ScriptedAnswers()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: fast_upstream.UpstreamProtocol(answers), "127.0.0.1", port)  # type: ignore[arg-type]
    async with server:
        await server.serve_forever()


# The measurement ----------------------------------------------------------------------------


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def create(self, **body: Any) -> tuple[float, dict[str, Any]]:
        """Seconds to the whole answer, and the answer."""
        payload = orjson.dumps({"model": MODEL, **body})
        started = time.perf_counter()
        async with self.session.post(
            f"{self.base}/v1/responses", data=payload, headers={"content-type": "application/json"}
        ) as answer:
            raw = await answer.read()
        elapsed = time.perf_counter() - started
        result = orjson.loads(raw)
        if answer.status != 200 or result.get("status") != "completed":
            raise RuntimeError(f"{answer.status}: {raw[:500]!r}")
        return elapsed, result

    async def delete_container(self, container_id: str) -> None:
        async with self.session.delete(f"{self.base}/v1/containers/{container_id}") as answer:
            await answer.read()


def container_of(response: dict[str, Any]) -> str:
    calls = [item for item in response["output"] if item["type"] == "code_interpreter_call"]
    if len(calls) != 1 or calls[0]["status"] != "completed":
        raise RuntimeError(f"expected one completed code_interpreter_call: {response['output']}")
    return str(calls[0]["container_id"])


async def measure(gateway: str, upstream: str, args: argparse.Namespace) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        client = Client(session, gateway)
        direct = Client(session, upstream)
        for _ in range(20):
            await client.create(input="hello", store=False)
            await direct.create(input="hello", store=False)
        upstream_alone = [(await direct.create(input="hello", store=False))[0] for _ in range(args.rounds)]
        plain = [(await client.create(input="hello", store=False))[0] for _ in range(args.rounds)]

        first: list[float] = []
        chain: dict[str, Any] | None = None
        for _ in range(args.first):
            await asyncio.sleep(args.pool_wait)  # the warm pool refills (a container starts in ~0.5 s)
            elapsed, response = await client.create(input=f"run: {CODE}", tools=[AUTO])
            first.append(elapsed)
            if chain is None:
                chain = response
            else:
                await client.delete_container(container_of(response))
        assert chain is not None
        container = container_of(chain)
        reuse = []
        for _ in range(args.rounds):
            elapsed, response = await client.create(
                input=f"run: {CODE}", tools=[AUTO], previous_response_id=chain["id"], store=False
            )
            if container_of(response) != container:
                raise RuntimeError("the follow-up did not reuse the chain's container")
            reuse.append(elapsed)
        plain_after = [(await client.create(input="hello", store=False))[0] for _ in range(args.rounds)]
        await client.delete_container(container)
    p50 = {
        name: statistics.median(samples) * 1000
        for name, samples in (
            ("upstream", upstream_alone),
            ("plain", plain + plain_after),
            ("first", first),
            ("reuse", reuse),
        )
    }
    return {
        **p50,
        "first_added": p50["first"] - p50["plain"],
        "reuse_added": p50["reuse"] - p50["plain"],
        "first_min_added": min(first) * 1000 - p50["plain"],
        "reuse_min_added": min(reuse) * 1000 - p50["plain"],
    }


def sandbox_python() -> str:
    from corral.sandbox_app import default_sandbox_python

    return default_sandbox_python()


async def main(args: argparse.Namespace) -> None:
    up_port, gw_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    gateway = f"http://127.0.0.1:{gw_port}"
    data_dir = tempfile.mkdtemp(prefix="corral-bench-sandbox-")
    config = Path(data_dir) / "corral.yaml"
    config.write_text(
        f"sandbox:\n  backend: local\n  python: {sandbox_python()}\n  warm_pool_size: 2\n  disk_mb: 64\n"
        "  max_containers: 16\n"
    )
    serve = [sys.executable, "-m", "corral.cli", "serve", "--port", str(gw_port), "--upstream", f"{upstream}/v1"]
    serve += ["--upstream-api", "responses", "--data-dir", data_dir, "--config", str(config), "--log-level", "warning"]
    runs = []
    with (
        process([sys.executable, __file__, "--upstream", str(up_port)], f"{upstream}/v1/models"),
        process(serve, f"{gateway}/health", timeout_s=120),
    ):
        await asyncio.sleep(args.pool_wait)
        for _ in range(args.repeat):
            runs.append(await measure(gateway, upstream, args))
    print(f"c=1; {args.rounds} plain and reuse samples, {args.first} first-request samples per run; p50 ms\n")
    labels = [
        ("upstream", "canned upstream alone, one call"),
        ("plain", "plain request (no tools)"),
        ("first", "first auto request (warm-pool container)"),
        ("reuse", "follow-up, container reused"),
        ("first_added", "first auto request, added over plain"),
        ("reuse_added", "reuse, added over plain"),
        ("first_min_added", "first auto request, fastest, added"),
        ("reuse_min_added", "reuse, fastest, added"),
    ]
    print(f"{'figure':<44}" + "".join(f"{'run ' + str(i + 1):>10}" for i in range(len(runs))) + f"{'median':>10}")
    for key, label in labels:
        values = [run[key] for run in runs]
        cells = "".join(f"{value:>10.2f}" for value in values)
        print(f"{label:<44}{cells}{statistics.median(values):>10.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--first", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--pool-wait", type=float, default=2.0, help="Seconds for the warm pool to refill.")
    parser.add_argument("--upstream", type=int, default=None, help="Run only the canned upstream on this port.")
    arguments = parser.parse_args()
    if arguments.upstream is not None:
        uvloop.run(serve_upstream(arguments.upstream))
    else:
        uvloop.run(main(arguments))
