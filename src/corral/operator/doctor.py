"""`corral doctor URL`: ask a model server what the gateway will ask it, and say what works.

Five checks, in the order a failure would make the next meaningless: the model list, the API kind
(the same detection `--upstream-api auto` runs), one plain answer, one streamed answer, one tool
round trip (a forced function call, then its output sent back for a final answer — the step where
real servers differ most from the reference one). Each check prints one line; the exit status is
0 only when all pass.
"""

import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TextIO

import aiohttp
import openai

from corral.upstream.api_kind import PATHS, detect_api

PROMPT = "Say hello in one short sentence."
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TOOL_PROMPT = "What is the weather in Paris? Use the get_weather tool."
TOOL_OUTPUT = '{"city": "Paris", "temperature_c": 21, "sky": "clear"}'
MAX_TOKENS = 48


class CheckFailed(Exception):
    """One check's failure, with what the server said."""


@dataclass
class Doctor:
    url: str
    client: openai.AsyncOpenAI
    model: str = ""
    api: str = "auto"

    async def models(self) -> str:
        listed = [model.id async for model in self.client.models.list()]
        if not listed:
            raise CheckFailed("GET /models lists no model")
        if not self.model:
            self.model = listed[0]
        elif self.model not in listed:
            raise CheckFailed(f"{self.model!r} is not among the listed models: {', '.join(listed)}")
        return ", ".join(listed) + f"  (trying {self.model})"

    async def kind(self, api_key: str | None) -> str:
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            detection = await detect_api(http, self.url, headers, self.api)
        seen = "; ".join(f"{PATHS[kind]}: {answer}" for kind, answer in detection.seen.items())
        if detection.problem is not None:
            raise CheckFailed(f"{detection.problem}  [{seen}]")
        if detection.kind is None:
            raise CheckFailed(f"could not tell which API the server speaks  [{seen}]")
        self.api = detection.kind
        return f"{PATHS[self.api]}  (use --upstream-api {self.api}, or auto)  [{seen}]"

    async def plain(self) -> str:
        if self.api == "chat":
            completion = await self.client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": PROMPT}], max_tokens=MAX_TOKENS
            )
            text = completion.choices[0].message.content if completion.choices else None
        else:
            response = await self.client.responses.create(model=self.model, input=PROMPT, max_output_tokens=MAX_TOKENS)
            text = response.output_text
        if not text or not text.strip():
            raise CheckFailed("the answer has no text")
        return _quote(text)

    async def streamed(self) -> str:
        pieces: list[str] = []
        events = 0
        finished = False
        if self.api == "chat":
            chunks = await self.client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": PROMPT}], max_tokens=MAX_TOKENS, stream=True
            )
            async for chunk in chunks:
                events += 1
                for choice in chunk.choices:
                    pieces.append(choice.delta.content or "")
                    finished = finished or choice.finish_reason is not None
            if not finished:
                raise CheckFailed(f"the stream ended after {events} chunk(s) without a finish_reason")
        else:
            events_stream = await self.client.responses.create(
                model=self.model, input=PROMPT, max_output_tokens=MAX_TOKENS, stream=True
            )
            async for event in events_stream:
                events += 1
                if event.type == "response.output_text.delta":
                    pieces.append(event.delta)
                finished = finished or event.type in ("response.completed", "response.incomplete")
            if not finished:
                raise CheckFailed(f"the stream ended after {events} event(s) without response.completed")
        text = "".join(pieces)
        if not text.strip():
            raise CheckFailed(f"{events} event(s) and no text")
        return f"{events} events, {_quote(text)}"

    async def tool_round_trip(self) -> str:
        if self.api == "chat":
            return await self._chat_tool_round_trip()
        return await self._responses_tool_round_trip()

    async def _chat_tool_round_trip(self) -> str:
        tools: Any = [{"type": "function", "function": WEATHER_TOOL}]
        messages: list[Any] = [{"role": "user", "content": TOOL_PROMPT}]
        first = await self.client.chat.completions.create(
            model=self.model,
            messages=messages,
            tools=tools,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            max_tokens=MAX_TOKENS * 2,
        )
        calls = first.choices[0].message.tool_calls if first.choices else None
        if not calls:
            raise CheckFailed("a forced tool_choice produced no tool call")
        call = calls[0]
        arguments = _arguments(call.function.arguments)  # type: ignore[union-attr]
        messages += [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": TOOL_OUTPUT},
        ]
        second = await self.client.chat.completions.create(
            model=self.model, messages=messages, tools=tools, max_tokens=MAX_TOKENS
        )
        message = second.choices[0].message if second.choices else None
        if message is None or not (message.content or message.tool_calls):
            raise CheckFailed("no answer after the tool output was sent back")
        return f"get_weather({arguments}) -> {_quote(message.content or '(another tool call)')}"

    async def _responses_tool_round_trip(self) -> str:
        tools: Any = [{"type": "function", **WEATHER_TOOL}]
        first = await self.client.responses.create(
            model=self.model,
            input=TOOL_PROMPT,
            tools=tools,
            tool_choice={"type": "function", "name": "get_weather"},
            max_output_tokens=MAX_TOKENS * 2,
        )
        calls = [item for item in first.output if item.type == "function_call"]
        if not calls:
            raise CheckFailed("a forced tool_choice produced no function_call")
        call = calls[0]
        arguments = _arguments(call.arguments)
        second = await self.client.responses.create(
            model=self.model,
            input=[
                {"role": "user", "content": TOOL_PROMPT},
                {"type": "function_call", "call_id": call.call_id, "name": "get_weather", "arguments": arguments},
                {"type": "function_call_output", "call_id": call.call_id, "output": TOOL_OUTPUT},
            ],
            tools=tools,
            max_output_tokens=MAX_TOKENS,
        )
        if not second.output:
            raise CheckFailed("no answer after the tool output was sent back")
        return f"get_weather({arguments}) -> {_quote(second.output_text or '(another tool call)')}"


def _arguments(raw: str | None) -> str:
    try:
        parsed = json.loads(raw or "")
    except json.JSONDecodeError:
        raise CheckFailed(f"the tool call's arguments are not JSON: {raw!r}") from None
    if not isinstance(parsed, dict):
        raise CheckFailed(f"the tool call's arguments are not a JSON object: {raw!r}")
    return json.dumps(parsed)


def _quote(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return json.dumps(flat if len(flat) <= limit else flat[: limit - 1] + "…", ensure_ascii=False)


def _explain(exc: Exception) -> str:
    if isinstance(exc, CheckFailed):
        return str(exc)
    if isinstance(exc, openai.APIStatusError):
        message = exc.message.splitlines()[0] if exc.message else ""
        return f"HTTP {exc.status_code}: {message}"
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return f"cannot connect: {cause}"
    return f"{type(exc).__name__}: {exc}"


async def run_doctor(
    url: str,
    *,
    model: str | None = None,
    api_key: str | None = None,
    api: str = "auto",
    timeout_s: float = 120.0,
    out: TextIO | None = None,
) -> int:
    stream = out or sys.stdout
    url = url.rstrip("/")
    client = openai.AsyncOpenAI(base_url=url, api_key=api_key or "unused", max_retries=0, timeout=timeout_s)
    doctor = Doctor(url, client, model or "", api)
    checks: list[tuple[str, Callable[[], Awaitable[str]]]] = [
        ("models", doctor.models),
        ("API", lambda: doctor.kind(api_key)),
        ("plain answer", doctor.plain),
        ("streamed answer", doctor.streamed),
        ("tool round trip", doctor.tool_round_trip),
    ]
    print(f"corral doctor {url}", file=stream)
    failed = 0
    try:
        for index, (name, check) in enumerate(checks):
            started = time.perf_counter()
            try:
                detail = await check()
            except Exception as exc:
                failed += 1
                print(f"  FAIL {name}: {_explain(exc)}", file=stream)
                if index < 2:
                    skipped = ", ".join(rest for rest, _ in checks[index + 1 :])
                    print(f"  skipped: {skipped}", file=stream)
                    break
                continue
            print(f"  ok   {name}: {detail}  ({time.perf_counter() - started:.1f} s)", file=stream, flush=True)
    finally:
        await client.close()
    if failed:
        print(f"{failed} check(s) failed.", file=stream)
        if "/v1" not in url:
            print(f"  (most servers serve the OpenAI API under /v1: try {url}/v1)", file=stream)
        return 1
    print("Everything works. Put Corral in front of it:", file=stream)
    print(f"  corral serve --upstream {url} --upstream-api {doctor.api}", file=stream)
    return 0
