"""Skills in containers: `environment.skills` of a hosted shell (inline zip bundles and
`skill_reference`s to the Skills API) and `skills` of a new container, mounted read-only at
/mnt/skills/<name> and named in the injected context. Run on local sandboxes and on a
`corral sandbox-host` process, whose copy arrives over the internal API."""

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import Gateway
from tests.support.mock import MockUpstream, call, sent_texts
from tests.support.sandboxed import sandboxed_gateway
from tests.support.skills import inline, skill_zip

pytestmark = pytest.mark.sandbox


def shell_tool(*skills: dict[str, Any]) -> dict[str, Any]:
    return {"type": "shell", "environment": {"type": "container_auto", "skills": list(skills)}}


def outputs(response: Any) -> list[tuple[str, int | None]]:
    """(stdout, exit code) of each command the shell ran."""
    item = next(i for i in response.output if i.type == "shell_call_output")
    return [(entry.stdout, entry.outcome.exit_code) for entry in item.output]


@pytest.fixture(
    scope="module",
    params=[
        ("local", "responses"),
        ("local", "chat"),
        pytest.param(("remote", "responses"), marks=pytest.mark.postgres),
    ],
    ids=["local", "local-chat", "remote"],
)
def gateway(
    request: pytest.FixtureRequest,
    mock_upstream: MockUpstream,
    sandbox_python: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    kind, api = request.param
    with sandboxed_gateway(
        kind, mock_upstream, sandbox_python, tmp_path_factory.mktemp(f"skills-{kind}-{api}"), api=api
    ) as gw:
        yield gw


def test_an_inline_skill_is_mounted_read_only_and_named_to_the_model(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    commands = [
        "cat /mnt/skills/adder/SKILL.md",
        "/mnt/skills/adder/scripts/add.sh 2 3",
        "echo changed > /mnt/skills/adder/SKILL.md",
        "rm -rf /mnt/skills/adder",
        "touch /mnt/skills/planted",
        "cat /mnt/skills/adder/SKILL.md | head -2 | tail -1",
    ]
    response = client.responses.create(
        model="mock-model",
        input=call("shell", commands=commands),
        tools=[shell_tool(inline())],  # type: ignore[list-item]
    )
    results = outputs(response)
    assert "Run scripts/add.sh" in results[0][0] and results[0][1] == 0
    assert results[1] == ("5\n", 0), "the script keeps its executable bit"
    assert all(code != 0 for _, code in results[2:5]), f"/mnt/skills is read-only: {results}"
    assert results[5] == ("name: adder\n", 0)
    context = "\n".join(sent_texts(mock.bodies()[0]))
    assert "adder: Adds two numbers. (/mnt/skills/adder/SKILL.md)" in context


def test_a_reused_container_keeps_its_skills_and_a_changed_one_replaces_it(
    gateway: Gateway, mock: MockUpstream
) -> None:
    client = gateway.client()
    first = client.responses.create(
        model="mock-model",
        input=call("shell", commands=["/mnt/skills/adder/scripts/add.sh 1 1"]),
        tools=[shell_tool(inline())],  # type: ignore[list-item]
    )
    assert outputs(first) == [("2\n", 0)]
    times = skill_zip(script="#!/bin/sh\necho $(($1 * $2))\n")
    second = client.responses.create(
        model="mock-model",
        input=call("shell", commands=["/mnt/skills/adder/scripts/add.sh 3 4", "ls /mnt/skills"]),
        tools=[shell_tool(inline(data=times), inline("other", "Another skill."))],  # type: ignore[list-item]
        previous_response_id=first.id,
    )
    container = next(i for i in first.output if i.type == "shell_call").environment.container_id  # type: ignore[union-attr]
    assert next(i for i in second.output if i.type == "shell_call").environment.container_id == container  # type: ignore[union-attr]
    assert outputs(second) == [("12\n", 0), ("adder\nother\n", 0)]


def test_a_container_made_with_skills_names_them_when_referenced(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    container = client.containers.create(name="with-skills", skills=[inline("reporter", "Writes reports.")])  # type: ignore[call-arg]
    tool = {"type": "shell", "environment": {"type": "container_reference", "container_id": container.id}}
    response = client.responses.create(
        model="mock-model",
        input=call("shell", commands=["ls /mnt/skills/reporter"]),
        tools=[tool],  # type: ignore[list-item]
    )
    assert outputs(response) == [("SKILL.md\nscripts\n", 0)]
    assert "reporter: Writes reports. (/mnt/skills/reporter/SKILL.md)" in "\n".join(sent_texts(mock.bodies()[0]))
    client.containers.delete(container.id)


def test_bad_skills_fail_the_request_before_any_container_is_made(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    before = {c.id for c in client.containers.list(limit=100)}
    no_manifest = io.BytesIO()
    with zipfile.ZipFile(no_manifest, "w") as archive:
        archive.writestr("adder/README.md", "no manifest here")
    cases: list[tuple[dict[str, Any], type[openai.APIStatusError], str]] = [
        (inline(data=b"not a zip"), openai.BadRequestError, "tools[0].environment.skills[0].source.data"),
        (inline(data=no_manifest.getvalue()), openai.BadRequestError, "tools[0].environment.skills[0].source.data"),
        ({**inline(), "name": "../escape"}, openai.BadRequestError, "tools[0].environment.skills[0].name"),
        (
            {**inline(), "source": {"type": "base64", "media_type": "application/zip", "data": "@@@"}},
            openai.BadRequestError,
            "tools[0].environment.skills[0].source.data",
        ),
        (
            {"type": "skill_reference", "skill_id": "skill_missing"},
            openai.NotFoundError,
            "tools[0].environment.skills[0]",
        ),
        (
            {"type": "skill_reference", "skill_id": "nope"},
            openai.BadRequestError,
            "tools[0].environment.skills[0].skill_id",
        ),
        ({"type": "mystery"}, openai.BadRequestError, "tools[0].environment.skills[0].type"),
    ]
    for skill, error, param in cases:
        mock.clear()
        with pytest.raises(error) as refused:
            client.responses.create(model="mock-model", input="x", tools=[shell_tool(skill)])  # type: ignore[list-item]
        assert refused.value.body["param"] == param, (skill, refused.value.body)  # type: ignore[index]
        assert mock.bodies() == [], "nothing was sent upstream"
    with pytest.raises(openai.BadRequestError) as on_reference:
        client.responses.create(
            model="mock-model",
            input="x",
            tools=[
                {
                    "type": "shell",
                    "environment": {"type": "container_reference", "container_id": "cntr_x", "skills": []},
                }
            ],  # type: ignore[list-item]
        )
    assert on_reference.value.code == "unknown_parameter"
    assert {c.id for c in client.containers.list(limit=100)} == before, "no container was allocated"


def test_a_skill_reference_mounts_the_default_version_or_the_one_named(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    made = client.skills.create(files=[("adder.zip", skill_zip(), "application/zip")])
    assert (made.name, made.default_version) == ("adder", "1")
    reference = {"type": "skill_reference", "skill_id": made.id}
    first = client.responses.create(
        model="mock-model",
        input=call("shell", commands=["/mnt/skills/adder/scripts/add.sh 3 4"]),
        tools=[shell_tool(reference)],  # type: ignore[list-item]
    )
    assert outputs(first) == [("7\n", 0)]

    client.skills.versions.create(
        made.id, files=[("adder.zip", skill_zip(script="#!/bin/sh\necho $(($1 * $2))\n"), "application/zip")]
    )
    pinned = client.responses.create(
        model="mock-model",
        input=call("shell", commands=["/mnt/skills/adder/scripts/add.sh 3 4"]),
        tools=[shell_tool({**reference, "version": 2})],  # type: ignore[list-item]
        previous_response_id=first.id,
    )
    assert outputs(pinned) == [("12\n", 0)], "version 2, in the same container"
    default = client.responses.create(
        model="mock-model",
        input=call("shell", commands=["/mnt/skills/adder/scripts/add.sh 3 4"]),
        tools=[shell_tool(reference)],  # type: ignore[list-item]
        previous_response_id=pinned.id,
    )
    assert outputs(default) == [("7\n", 0)], "the default version is still 1"
    client.skills.delete(made.id)
