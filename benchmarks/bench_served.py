"""Throughput of the openai backend against requests in flight, and its own overhead per request.

1. Throughput: `transformers serve` processes (one by default) on a tiny Qwen2-Audio
   checkpoint built offline (the tests' one), on the CPU, bound to 127.0.0.1; the backend
   sends --clips clips in generate mode with 1, 2, 4 and 8 requests in flight per endpoint.
   Settings are interleaved within each repeat; the medians of --repeats are reported, with
   each setting's ratio to one in flight.
2. Overhead: against a stub server that answers at once (so the server costs almost
   nothing), the backend's time per request (WAV + base64 + JSON body, HTTP, parsing,
   leases) next to a bare httpx2 loop posting the same bodies, prebuilt; the difference is
   what the harness adds per request. One request at a time, alternating clip by clip, the
   median of the paired differences.

    .venv/bin/python benchmarks/bench_served.py
    .venv/bin/python benchmarks/bench_served.py --servers 2 --clips 96 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qsm_eval.backends import create_backend  # noqa: E402
from qsm_eval.backends.audio_llm.synthetic import save_tiny_checkpoint  # noqa: E402
from qsm_eval.backends.base import AudioRequest  # noqa: E402

IN_FLIGHT = (1, 2, 4, 8)


def clips(n: int) -> list[AudioRequest]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        ms = (100, 200, 500, 1000)[i % 4]
        out.append(AudioRequest(f"clip-{i}", (0.1 * rng.standard_normal(ms * 16)).astype(np.float32), ms))
    return out


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_servers(checkpoint: Path, count: int, logs: Path) -> list[tuple[str, subprocess.Popen]]:
    import httpx2

    servers = []
    for i in range(count):
        port = free_port()
        log = open(logs / f"serve-{i}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "transformers.cli.transformers", "serve", str(checkpoint), "--host",
             "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        servers.append((f"http://127.0.0.1:{port}", process))
    deadline = time.monotonic() + 300
    for url, process in servers:
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"transformers serve at {url} did not start; see {logs}")
            try:
                if httpx2.get(url + "/v1/models", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                time.sleep(0.3)
    return servers


def throughput(urls: list[str], requests, in_flight: int) -> float:
    backend = create_backend("openai", {"endpoint": urls, "scoring": "generate", "max_new_tokens": 3,
                                        "max_in_flight": in_flight})
    try:
        started = time.perf_counter()
        answers = backend.predict_batch(requests)
        elapsed = time.perf_counter() - started
    finally:
        backend.close()
    failed = [a.error for a in answers if a.error]
    if failed:
        raise SystemExit(f"{len(failed)} requests failed, e.g. {failed[0]}")
    return len(requests) / elapsed


class InstantServer:
    """Answers every POST with one canned chat completion, at once."""

    REPLY = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "stub",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "SPEECH"}}]}).encode()

    def __init__(self):
        reply = self.REPLY

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"   # keep-alive, as uvicorn and vLLM answer
            disable_nagle_algorithm = True  # else headers and body wait on a delayed ACK (~40 ms)

            def log_message(self, *args):
                pass

            def _answer(self, payload: bytes):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                self._answer(b'{"object": "list", "data": [{"id": "stub", "object": "model"}]}')

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self._answer(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def overhead(requests, repeats: int) -> tuple[float, float, float]:
    """(backend ms, bare httpx2 ms, median of the paired differences) per request, one in
    flight: each clip through the backend, then the same body through a bare loop, alternating
    clip by clip so that the machine's load drifts alike on both."""
    import httpx2

    from qsm_eval.backends.served import chat

    stub = InstantServer()
    backend = create_backend("openai", {"endpoint": stub.url, "scoring": "generate", "max_in_flight": 1})
    # The same bodies the backend sends, built before the clock starts.
    bodies = [chat.generate_body("stub", chat.messages(backend.prompt, chat.wav_base64(r.waveform)), 3)
              for r in requests]
    bare_client = httpx2.Client(base_url=stub.url)
    ours, bare = [], []
    try:
        for _ in range(repeats):
            for request, body in zip(requests, bodies):
                started = time.perf_counter()
                backend.predict_batch([request])
                ours.append(1000 * (time.perf_counter() - started))
                started = time.perf_counter()
                bare_client.post("/v1/chat/completions", json=body).json()
                bare.append(1000 * (time.perf_counter() - started))
    finally:
        bare_client.close()
        backend.close()
        stub.close()
    return statistics.median(ours), statistics.median(bare), statistics.median(o - b for o, b in zip(ours, bare))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=1, help="transformers serve processes (default 1)")
    parser.add_argument("--clips", type=int, default=48, help="clips per measurement (default 48)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats, medians reported (default 3)")
    args = parser.parse_args(argv)

    requests = clips(args.clips)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = save_tiny_checkpoint(tmp / "tiny", seed=0, init_range=0.2)
        servers = start_servers(checkpoint, args.servers, tmp)
        try:
            urls = [url for url, _ in servers]
            throughput(urls, requests[:8], 2)   # warm-up: first requests pay for lazy imports
            rates = {k: [] for k in IN_FLIGHT}
            for _ in range(args.repeats):
                for k in IN_FLIGHT:
                    rates[k].append(throughput(urls, requests, k))
        finally:
            for _, process in servers:
                process.terminate()
                process.wait(timeout=30)
    base = statistics.median(rates[1])
    print(f"throughput, {args.servers} transformers serve process(es), tiny Qwen2-Audio on the CPU, "
          f"{args.clips} clips, generate (3 tokens), medians of {args.repeats}:")
    for k in IN_FLIGHT:
        rate = statistics.median(rates[k])
        print(f"  {k} in flight per endpoint: {rate:6.1f} clips/s  ({rate / base:.2f}x one in flight)")
    ours, bare, added = overhead(requests, args.repeats)
    print(f"overhead per request against an instant stub, one in flight, {args.repeats} x {args.clips} "
          f"paired requests, medians:")
    print(f"  openai backend {ours:.2f} ms, bare httpx2 post {bare:.2f} ms: the harness adds {added:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
