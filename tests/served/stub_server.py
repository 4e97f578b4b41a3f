"""A small local HTTP server for the tests that a real `transformers serve` cannot cover.

It binds 127.0.0.1 on a free port, in a thread of the test process, and answers what its
``chat`` callable says: fault scripts (429 with Retry-After, 500, a stall past the client's
timeout, a body that is not JSON, a 401 that echoes the request's headers) and vLLM's
documented logits shape (``choices[0].logprobs.content[0].top_logprobs``) computed from a
real tiny model. Every request it receives is recorded for the assertions.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict = b""
    headers: dict = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: dict | None


class StubServer:
    """``chat(body, headers) -> Reply`` answers POST /v1/chat/completions; ``models`` lists ids;
    ``tokenizer`` (with encode/decode) answers /tokenize and /detokenize the way vLLM does."""

    def __init__(self, chat: Callable[[dict, dict], Reply], models=("stub-model",), tokenizer=None,
                 models_status: int = 200):
        self.chat, self.models, self.tokenizer = chat, list(models), tokenizer
        self.models_status = models_status
        self.received: list[Received] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: the tests read self.received instead
                pass

            def do_GET(self):
                stub._record(self, None)
                if self.path == "/v1/models":
                    self._send(Reply(stub.models_status, {"object": "list", "data": [
                        {"id": m, "object": "model"} for m in stub.models]}))
                else:
                    self._send(Reply(404, {"detail": "Not Found"}))

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                stub._record(self, body)
                if self.path == "/v1/chat/completions":
                    self._send(stub.chat(body, dict(self.headers)))
                elif self.path == "/tokenize" and stub.tokenizer is not None:
                    ids = stub.tokenizer.encode(body["prompt"], add_special_tokens=False)
                    self._send(Reply(200, {"count": len(ids), "max_model_len": 8192, "tokens": ids}))
                elif self.path == "/detokenize" and stub.tokenizer is not None:
                    self._send(Reply(200, {"prompt": stub.tokenizer.decode(body["tokens"])}))
                else:
                    self._send(Reply(404, {"detail": "Not Found"}))

            def _send(self, reply: Reply):
                if reply.delay_s:
                    threading.Event().wait(reply.delay_s)
                payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): what the stall test wants

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="stub-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def chat_requests(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == "/v1/chat/completions"]

    def _record(self, handler, body) -> None:
        with self._lock:
            self.received.append(Received(handler.command, handler.path, dict(handler.headers), body))

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def completion(text: str, logprobs: dict | None = None) -> dict:
    """A chat.completion object as OpenAI documents it (and vLLM returns it)."""
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return {"id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": "stub-model",
            "choices": [choice], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
