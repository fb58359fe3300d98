"""Attacks on the gateway through container files, as model-written code would make them.

Each test runs code in a container through the public API (the scripted upstream makes the model
call the code interpreter), then uses the Containers API the way a client would. The gateway runs
as root, in this process, so a host file that it follows a link to is really reachable: every test
checks that host files are left exactly as they were.
"""

import base64
import stat
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import Gateway, gateway_on
from tests.fixtures.sandboxes import TEST_DISK_MB, sandbox_settings
from tests.support.mock import MockUpstream, call
from tests.support.sandboxed import sandboxed_gateway

pytestmark = pytest.mark.sandbox

HOST_SECRET = b"HOST-SECRET: nobody inside a container may read or change this\n"


@pytest.fixture(scope="module", params=["local", pytest.param("remote", marks=pytest.mark.postgres)])
def gateway(
    request: pytest.FixtureRequest,
    mock_upstream: MockUpstream,
    sandbox_python: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    """A gateway with its own sandboxes, and one whose containers run on a `corral sandbox-host`
    process (the attacks then go through the internal API to another root process)."""
    with sandboxed_gateway(
        request.param, mock_upstream, sandbox_python, tmp_path_factory.mktemp(f"attacked-{request.param}")
    ) as gw:
        yield gw


@pytest.fixture()
def host_file(tmp_path: Path) -> Path:
    """A root-only host file, outside every container, that the attacks aim at."""
    target = tmp_path / "host-secret.txt"
    target.write_bytes(HOST_SECRET)
    target.chmod(0o600)
    return target


def assert_untouched(target: Path) -> None:
    assert target.read_bytes() == HOST_SECRET
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def run_python(client: openai.OpenAI, container_id: str, code: str) -> str:
    response = client.responses.create(
        model="mock-model",
        input=call("python", code=code),
        tools=[{"type": "code_interpreter", "container": container_id}],
        include=["code_interpreter_call.outputs"],
    )
    item = next(i for i in response.output if i.type == "code_interpreter_call")
    return "".join(output.logs for output in item.outputs or [] if output.type == "logs")


def file_id(client: openai.OpenAI, container_id: str, path: str) -> str:
    return next(f.id for f in client.containers.files.list(container_id, limit=100).data if f.path == path)


def test_a_planted_link_is_never_served(gateway: Gateway, mock: MockUpstream, host_file: Path) -> None:
    client = gateway.client()
    container = client.containers.create(name="link-read")
    registered = client.containers.files.create(container.id, file=("x.txt", b"harmless"))
    run_python(client, container.id, f"import os\nos.remove('x.txt')\nos.symlink({str(host_file)!r}, 'x.txt')")
    response = httpx.get(f"{gateway.url}/containers/{container.id}/files/{registered.id}/content")
    assert response.status_code == 404
    assert HOST_SECRET not in response.content
    run_python(client, container.id, f"import os\nos.symlink({str(host_file)!r}, 'fresh-link')")
    paths = [f.path for f in client.containers.files.list(container.id).data]
    assert "/mnt/data/fresh-link" not in paths, "a link is not a container file"


def test_a_link_to_a_fifo_or_a_fifo_does_not_hang_a_download(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    container = client.containers.create(name="fifo")
    registered = client.containers.files.create(container.id, file=("pipe", b"data"))
    run_python(client, container.id, "import os\nos.remove('pipe')\nos.mkfifo('pipe')")
    response = httpx.get(f"{gateway.url}/containers/{container.id}/files/{registered.id}/content", timeout=30)
    assert response.status_code == 404


def test_an_upload_over_a_link_replaces_the_link(gateway: Gateway, mock: MockUpstream, host_file: Path) -> None:
    client = gateway.client()
    container = client.containers.create(name="link-write")
    run_python(client, container.id, f"import os\nos.symlink({str(host_file)!r}, 'report.csv')")
    client.containers.files.create(container.id, file=("report.csv", b"uploaded"))
    assert_untouched(host_file)
    inside = run_python(
        client, container.id, "import os\nprint(os.path.islink('report.csv'), open('report.csv').read())"
    )
    assert inside.strip() == "False uploaded"


def test_an_upload_through_a_linked_directory_is_refused(gateway: Gateway, mock: MockUpstream, host_file: Path) -> None:
    client = gateway.client()
    container = client.containers.create(name="dir-link-write")
    run_python(client, container.id, f"import os\nos.symlink({str(host_file.parent)!r}, 'out')")
    with pytest.raises(openai.BadRequestError):
        client.containers.files.create(container.id, file=("out/host-secret.txt", b"overwritten"))
    assert_untouched(host_file)
    assert sorted(p.name for p in host_file.parent.iterdir()) == ["host-secret.txt"]


def test_a_delete_after_a_parent_is_swapped_for_a_link_deletes_nothing_outside(
    gateway: Gateway, mock: MockUpstream, host_file: Path
) -> None:
    client = gateway.client()
    container = client.containers.create(name="link-delete")
    registered = client.containers.files.create(container.id, file=("d/host-secret.txt", b"inside"))
    run_python(
        client, container.id, f"import os\nos.rename('d', 'd-moved')\nos.symlink({str(host_file.parent)!r}, 'd')"
    )
    client.containers.files.delete(registered.id, container_id=container.id)
    assert_untouched(host_file)
    kept = run_python(client, container.id, "print(open('d-moved/host-secret.txt').read())")
    assert kept.strip() == "inside", "the file behind the swapped directory is not the one deleted either"


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b"")
    )


def test_images_are_never_written_through_planted_links(gateway: Gateway, mock: MockUpstream, host_file: Path) -> None:
    """Links named like every image file the gateway might write next, then an image is shown."""
    client = gateway.client()
    container = client.containers.create(name="image-links")
    now = int(time.time())
    plant = (
        "import os\n"
        f"target = {str(host_file)!r}\n"
        "names = [f'image_{n}.png' for n in range(1, 6)]\n"
        f"names += [f'image_{{t}}_{{n}}.png' for t in range({now}, {now + 120}) for n in range(0, 4)]\n"
        "for name in names:\n"
        "    os.symlink(target, name)\n"
        "print(len(names))\n"
    )
    run_python(client, container.id, plant)
    encoded = base64.b64encode(_png()).decode()
    show = (
        f"from IPython.display import Image, display\nimport base64\ndisplay(Image(data=base64.b64decode({encoded!r})))"
    )
    response = client.responses.create(
        model="mock-model",
        input=call("python", code=show),
        tools=[{"type": "code_interpreter", "container": container.id}],
        include=["code_interpreter_call.outputs"],
    )
    assert_untouched(host_file)
    item = next(i for i in response.output if i.type == "code_interpreter_call")
    images = [output for output in item.outputs or [] if output.type == "image"]
    assert len(images) == 1, "the image is still saved, under a fresh name"
    saved = [f for f in client.containers.files.list(container.id, limit=100).data if f.path.endswith(".png")]
    assert len(saved) == 1 and saved[0].id in images[0].url
    assert client.containers.files.content.retrieve(saved[0].id, container_id=container.id).read() == _png()


def test_a_linked_kernel_log_is_never_written(gateway: Gateway, mock: MockUpstream, host_file: Path) -> None:
    """The kernel's log used to live in a directory the sandbox writes: link it, crash the kernel,
    and the next kernel's stdout went to the link's target, as root."""
    client = gateway.client()
    container = client.containers.create(name="log-link")
    run_python(client, container.id, "print('started')")
    crash = (
        "import glob, os\n"
        "for directory in ['/run/corral', '/mnt/data', '/tmp']:\n"
        "    path = os.path.join(directory, 'kernel.log')\n"
        "    try:\n"
        "        os.remove(path)\n"
        "    except OSError:\n"
        "        pass\n"
        "    try:\n"
        f"        os.symlink({str(host_file)!r}, path)\n"
        "    except OSError:\n"
        "        pass\n"
        "os._exit(1)\n"
    )
    run_python(client, container.id, crash)
    after = run_python(client, container.id, "import os\nos.write(1, b'APPENDED-BY-THE-SANDBOX')\nprint('next')")
    assert "next" in after
    assert_untouched(host_file)


def test_a_full_disk_fails_inside_the_container_only(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    container = client.containers.create(name="filler")
    other = client.containers.create(name="bystander")
    size_mb = TEST_DISK_MB * 3
    fill = (
        "import errno\n"
        "try:\n"
        "    with open('fill.bin', 'wb') as handle:\n"
        f"        for _ in range({size_mb}):\n"
        "            handle.write(b'0' * 1024 * 1024)\n"
        "    print('WROTE-ALL')\n"
        "except OSError as exc:\n"
        "    print('refused', errno.errorcode.get(exc.errno))\n"
    )
    output = run_python(client, container.id, fill)
    assert "WROTE-ALL" not in output
    assert "refused ENOSPC" in output or "refused EDQUOT" in output
    stored = client.responses.create(model="mock-model", input="still storing?")
    assert client.responses.retrieve(stored.id).output_text == stored.output_text
    assert (
        run_python(client, other.id, "open('ok.txt', 'w').write('fine')\nprint(open('ok.txt').read())").strip()
        == "fine"
    )
    uploaded = client.containers.files.create(other.id, file=("more.txt", b"more"))
    assert uploaded.bytes == 4


def test_each_container_runs_as_its_own_user(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    first = client.containers.create(name="uid-a")
    second = client.containers.create(name="uid-b")
    uid_a = run_python(client, first.id, "import os\nprint(os.getuid())").strip()
    uid_b = run_python(client, second.id, "import os\nprint(os.getuid())").strip()
    assert uid_a != uid_b
    assert "0" not in (uid_a, uid_b)
    uploaded = client.containers.files.create(first.id, file=("mine.txt", b"x"))
    owner = run_python(
        client, first.id, "import os\nst = os.stat('mine.txt')\nprint(st.st_uid, oct(st.st_mode & 0o777))"
    )
    assert owner.split() == [uid_a, "0o644"], "uploads belong to the container's user, not world-writable"
    assert uploaded.path == "/mnt/data/mine.txt"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store_gateway(
    request: pytest.FixtureRequest, mock_upstream: MockUpstream, sandbox_python: str, tmp_path: Path
) -> Iterator[Gateway]:
    with gateway_on(request.param, mock_upstream, tmp_path, sandbox=sandbox_settings(sandbox_python)) as gw:
        yield gw


def test_hostile_names_do_not_break_the_container(any_store_gateway: Gateway, mock: MockUpstream) -> None:
    client = any_store_gateway.client()
    container = client.containers.create(name="names")
    hostile = (
        "import os\n"
        "open(b'bad-\\xff-name.txt', 'wb').write(b'x')\n"
        "deep = '/'.join(['d' * 200] * 6)\n"
        "os.makedirs(deep, exist_ok=True)\n"
        "open(deep + '/long.txt', 'w').write('y')\n"
        "open('fine.txt', 'w').write('ok')\n"
        "print('planted')\n"
    )
    first = run_python(client, container.id, hostile)
    assert "planted" in first
    assert "not container files" in first and "not UTF-8" in first
    again = run_python(client, container.id, "print('still usable')")
    assert "still usable" in again
    paths = [f.path for f in client.containers.files.list(container.id, limit=100).data]
    assert "/mnt/data/fine.txt" in paths
    assert all(len(path) <= 1024 for path in paths)
    auto = client.responses.create(
        model="mock-model", input="hello", tools=[{"type": "code_interpreter", "container": container.id}]
    )
    assert auto.status == "completed"


def test_the_gateway_never_leaves_world_writable_files(gateway: Gateway, mock: MockUpstream) -> None:
    client = gateway.client()
    container = client.containers.create(name="modes")
    client.containers.files.create(container.id, file=("a/b/c.txt", b"x"))
    modes = run_python(
        client,
        container.id,
        "import os\nfor p in ['a', 'a/b', 'a/b/c.txt']:\n    print(oct(os.stat(p).st_mode & 0o002))",
    )
    assert modes.split() == ["0o0", "0o0", "0o0"]
