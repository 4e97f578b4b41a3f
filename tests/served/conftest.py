"""Fixtures for the served-model backend: real `transformers serve` processes and stub servers.

Two `transformers serve` processes serve one tiny Qwen2-Audio checkpoint (built offline, as
in tests/qwen) on the CPU, bound to 127.0.0.1 on free ports, with HF_HUB_OFFLINE=1: started
once per session (each takes seconds to import torch and load), stopped at its end, and
every wait on them bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from qsm_eval.backends.base import AudioRequest
from qsm_eval.backends.audio_llm.synthetic import save_tiny_checkpoint

from ..conftest import clip_request, synthetic_clip

SERVER_START_TIMEOUT_S = 180
TINY_INIT_RANGE = 0.2        # as tests/qwen: answers then depend visibly on the audio
DEMO_SET = Path(__file__).resolve().parents[2] / "qsm_eval" / "data" / "demo"
EVAL_SUITE = Path(__file__).resolve().parents[2] / "evals" / "test_speech_detection.py"


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory, worker_id) -> Path:
    """A directory every xdist worker of this session sees (the session's own without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if worker_id != "master" else base


def _lock(shared_dir: Path, name: str):
    from filelock import FileLock
    return FileLock(str(shared_dir / f"served-{name}.lock"), timeout=SERVER_START_TIMEOUT_S + 120)


@pytest.fixture(scope="session")
def tiny_checkpoint(shared_dir) -> Path:
    """Built once per session, whichever worker comes first: the servers serve this directory."""
    directory = shared_dir / "served-tiny-qwen2-audio"
    with _lock(shared_dir, "checkpoint"):
        if not (directory / "model.safetensors").is_file():
            save_tiny_checkpoint(directory, seed=0, init_range=TINY_INIT_RANGE)
    return directory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServeProcess:
    url: str
    pid: int
    log: Path

    def chat_requests(self) -> int:
        """Chat completions this server answered, from its own access log."""
        return self.log.read_text(errors="replace").count('"POST /v1/chat/completions HTTP/1.1" 200')

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return _PROCESSES.get(self.pid) is None or _PROCESSES[self.pid].poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 3 s; the process may belong to another worker. The
        servers keep nothing worth a longer grace, and `transformers serve` waits out its open
        keep-alive connections (15 s here cost 30 s of every session's teardown)."""
        process = _PROCESSES.pop(self.pid, None)
        deadline = time.monotonic() + 3
        try:
            os.kill(self.pid, signal.SIGTERM)
            while time.monotonic() < deadline:
                if process is not None and process.poll() is not None:
                    return
                if process is None and not self.alive():
                    return
                time.sleep(0.1)
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if process is not None:
            process.wait(timeout=15)


# Popen objects of the servers this process started (to reap them).
_PROCESSES: dict[int, subprocess.Popen] = {}


def start_transformers_serve(checkpoint: Path, log: Path) -> ServeProcess:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(checkpoint),
               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32"]
    with open(log, "wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    _PROCESSES[process.pid] = process
    return ServeProcess(f"http://127.0.0.1:{port}", process.pid, log)


def wait_until_serving(server: ServeProcess, deadline: float) -> None:
    import httpx2

    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"transformers serve exited:\n{server.log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx2.get(server.url + "/v1/models", timeout=2).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"transformers serve at {server.url} not up after {SERVER_START_TIMEOUT_S} s:\n"
                       f"{server.log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="session")
def transformers_servers(tiny_checkpoint, shared_dir) -> list[ServeProcess]:
    """Two `transformers serve` processes on the tiny checkpoint, shared by the xdist workers
    (the pytest-xdist recipe: a file lock and a state file); the last user stops them."""
    state_file = shared_dir / "served-servers.json"
    with _lock(shared_dir, "servers"):
        state = json.loads(state_file.read_text()) if state_file.is_file() else {"users": 0, "servers": []}
        servers = [ServeProcess(s["url"], s["pid"], Path(s["log"])) for s in state["servers"]]
        if not servers or not all(s.alive() for s in servers):
            for server in servers:
                server.stop()
            servers = [start_transformers_serve(tiny_checkpoint, shared_dir / f"serve-{i}.log") for i in range(2)]
            try:
                deadline = time.monotonic() + SERVER_START_TIMEOUT_S
                for server in servers:
                    wait_until_serving(server, deadline)
            except BaseException:
                for server in servers:
                    server.stop()
                raise
        state = {"users": state["users"] + 1,
                 "servers": [{"url": s.url, "pid": s.pid, "log": str(s.log)} for s in servers]}
        state_file.write_text(json.dumps(state))
    try:
        yield servers
    finally:
        with _lock(shared_dir, "servers"):
            state = json.loads(state_file.read_text())
            state["users"] -= 1
            if state["users"] <= 0:
                for server in servers:
                    server.stop()
                state_file.unlink()
            else:
                state_file.write_text(json.dumps(state))


# The one clip helpers of the tests (tests/conftest.py); test_faults imports make_request here.
make_request = clip_request


@pytest.fixture(scope="session")
def clips() -> list[AudioRequest]:
    """Six clips, tones and noise, 120 ms to 1 s: every one at least two audio tokens (see the README on one)."""
    specs = [("tone", 120), ("noise", 300), ("tone", 1000), ("noise", 80), ("tone", 200), ("noise", 1000)]
    return [clip_request(f"{kind}-{ms}-{i}", synthetic_clip(kind, ms, seed=i)) for i, (kind, ms) in enumerate(specs)]
