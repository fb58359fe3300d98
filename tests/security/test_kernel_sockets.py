"""The gateway reaches the kernel's sockets only through the inodes it checked: a link the sandbox
plants at a socket's name (before or after the kernel binds it) never leads the gateway elsewhere."""

import asyncio
from pathlib import Path

import pytest
import zmq

from corral.sessions.backends.local.sockets import PinnedSockets, SocketsNotReady

PORTS = (1, 2)


def bind(context: zmq.Context[zmq.Socket[bytes]], path: Path) -> zmq.Socket[bytes]:
    socket = context.socket(zmq.REP)
    socket.setsockopt(zmq.RCVTIMEO, 5000)
    socket.bind(f"ipc://{path}")
    return socket


def test_a_link_swapped_in_after_pinning_is_not_followed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    context = zmq.Context()
    kernel = [bind(context, run / f"k-{port}") for port in PORTS]
    bait = bind(context, tmp_path / "host-service")
    pinned = PinnedSockets(run, "k", PORTS)
    try:
        ip = asyncio.run(pinned.pin(lambda: True, 10))
        for port in PORTS:
            (run / f"k-{port}").rename(run / f"moved-{port}")
            (run / f"k-{port}").symlink_to(tmp_path / "host-service")
        client = context.socket(zmq.REQ)
        client.setsockopt(zmq.RCVTIMEO, 5000)
        client.connect(f"ipc://{ip}-1")
        client.send(b"to the kernel")
        assert kernel[0].recv() == b"to the kernel"
        bait.setsockopt(zmq.RCVTIMEO, 0)
        with pytest.raises(zmq.Again):
            bait.recv()
        client.close(linger=0)
    finally:
        pinned.release()
        context.destroy(linger=0)
    assert not pinned.directory.exists()


def test_a_link_planted_before_the_kernel_binds_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    context = zmq.Context()
    bait = bind(context, tmp_path / "host-service")
    try:
        for port in PORTS:
            (run / f"k-{port}").symlink_to(tmp_path / "host-service")
        with pytest.raises(SocketsNotReady, match="not a socket"):
            asyncio.run(PinnedSockets(run, "k", PORTS).pin(lambda: True, 10))
    finally:
        bait.close(linger=0)
        context.destroy(linger=0)


def test_a_kernel_that_never_binds_ends_the_wait(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(SocketsNotReady, match="exited"):
        asyncio.run(PinnedSockets(run, "k", PORTS).pin(lambda: False, 10))
