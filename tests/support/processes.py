"""Corral as real processes (`corral serve`, `corral sandbox-host`), each with its own data
directory and YAML settings, that a test can stop gracefully or kill -9."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import yaml

from tests.support.servers import free_port, wait_for


class CorralProcess:
    def __init__(self, command: str, data_dir: Path, settings: dict[str, Any]) -> None:
        self.command = command
        self.data_dir = data_dir
        self.port = free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        config = data_dir / "corral.yaml"
        config.write_text(yaml.safe_dump({"port": self.port, "data_dir": str(data_dir), **settings}))
        self.log = (data_dir / "process.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "corral.cli", command, "--config", str(config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={key: value for key, value in os.environ.items() if not key.startswith("CORRAL_")},
        )
        try:
            wait_for(f"{self.base}/health")
        except BaseException:
            self.stop()
            raise

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host_id(self) -> str:
        return (self.data_dir / "sandbox-host-id").read_text().strip()

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base}/v1", api_key="unused", max_retries=0, timeout=120)

    def kill(self) -> None:
        """kill -9: nothing of the process's own shutdown runs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def output(self) -> str:
        return (self.data_dir / "process.log").read_text(errors="replace")


def unmount_under(directory: Path) -> None:
    """Container disks a killed process left mounted under `directory`."""
    with open("/proc/self/mounts") as mounts:
        targets = [line.split()[1] for line in mounts if line.split()[1].startswith(str(directory))]
    for target in sorted(targets, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)


@contextmanager
def corral_processes(root: Path) -> Iterator[list[CorralProcess]]:
    """Every process started into the list is stopped at the end, and what it left mounted undone."""
    started: list[CorralProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()
        unmount_under(root)
