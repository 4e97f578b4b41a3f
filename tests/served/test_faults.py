"""Faults a served model can have, against stub servers (a real server cannot be made to fail
on cue): 429 with Retry-After, 5xx, stalls past the timeout, garbage, dead or wrong endpoints,
and how requests spread over several endpoints."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from qsm_eval.backends import BackendError, create_backend
from qsm_eval.backends.served.transport import retry_after_seconds

from .conftest import free_port, make_request
from .stub_server import Reply, StubServer, completion


def script(*replies: Reply, then: Reply | None = None):
    """A chat handler answering the given replies in order, then ``then`` (a SPEECH answer)."""
    queue = list(replies)
    lock = threading.Lock()
    final = then or Reply(200, completion("SPEECH"))

    def chat(body, headers):
        with lock:
            return queue.pop(0) if queue else final
    return chat


def backend(*servers, **settings):
    return create_backend("openai", {"endpoint": [s.url for s in servers], "scoring": "generate", **settings})


def requests(n: int):
    return [make_request(f"clip-{i}", 0.1 * np.ones(1600 + 160 * i, dtype=np.float32)) for i in range(n)]


def test_429_waits_for_retry_after_then_answers():
    with StubServer(script(Reply(429, {"error": "slow down"}, {"Retry-After": "0.4"}))) as stub:
        model = backend(stub)
        started = time.perf_counter()
        [prediction] = model.predict_batch(requests(1))
        elapsed = time.perf_counter() - started
        model.close()
    assert prediction.error is None and prediction.label == "SPEECH"
    assert len(stub.chat_requests()) == 2 and elapsed >= 0.4
    assert model.timings()["endpoints"][stub.url] == {"requests": 2, "ok": 1, "retried": 1, "failed": 0}


def test_5xx_is_retried_and_a_persistent_one_fails_only_its_clip():
    failing = Reply(503, b"upstream overloaded")
    with StubServer(script(Reply(500, b"oops"), failing, failing, failing)) as stub:
        model = backend(stub, max_retries=2, max_in_flight=1)
        first, second = model.predict_batch(requests(2))
        model.close()
    # The first clip: 500, 503, 503 (three attempts), then gives up; the second: 503, then answers.
    assert first.error.startswith("no answer after 3 attempts") and "HTTP 503" in first.error
    assert stub.url in first.error and "upstream overloaded" in first.error
    assert second.error is None and second.label == "SPEECH"


def test_a_stalled_server_times_out_within_the_bound():
    with StubServer(script(then=Reply(200, completion("SPEECH"), delay_s=3.0))) as stub:
        model = backend(stub, request_timeout_s=0.3, max_retries=1)
        started = time.perf_counter()
        [prediction] = model.predict_batch(requests(1))
        elapsed = time.perf_counter() - started
        model.close()
    assert "no answer within 0.3 s" in prediction.error and prediction.label == "UNKNOWN"
    assert len(stub.chat_requests()) == 2 and elapsed < 2.5   # two 0.3 s attempts and a backoff


@pytest.mark.parametrize("reply, expected", [
    (Reply(200, b"<html>proxy error</html>"), "not a JSON object"),
    (Reply(200, {"choices": []}), "no choices[0].message.content"),
    (Reply(400, {"error": "bad audio"}), "HTTP 400"),
])
def test_garbage_and_4xx_fail_the_clip_at_once(reply, expected):
    with StubServer(script(then=reply)) as stub:
        model = backend(stub)
        [prediction] = model.predict_batch(requests(1))
        model.close()
    assert expected in prediction.error and len(stub.chat_requests()) == 1


def test_a_dead_endpoint_stops_the_start_at_once_naming_it():
    dead = f"http://127.0.0.1:{free_port()}"
    with StubServer(script()) as alive:
        started = time.perf_counter()
        with pytest.raises(BackendError) as error:
            create_backend("openai", {"endpoint": [alive.url, dead], "scoring": "generate"})
    assert time.perf_counter() - started < 5
    message = str(error.value)
    assert dead in message and "cannot connect" in message and alive.url not in message


def test_a_server_that_is_not_openai_compatible_is_named():
    with StubServer(script(), models_status=404) as stub:
        with pytest.raises(BackendError, match="is this an OpenAI-compatible server"):
            backend(stub)


def test_the_served_model_must_be_chosen_and_served():
    with StubServer(script(), models=("a", "b")) as stub:
        with pytest.raises(BackendError, match="choose the model with --qsm-served-model"):
            backend(stub)
        with pytest.raises(BackendError, match="'c' is not served everywhere"):
            backend(stub, served_model="c")
        assert backend(stub, served_model="b").identity().model == "b"


def test_requests_spread_by_load_and_stay_within_the_bound():
    in_flight = {"now": 0, "most": 0}
    lock = threading.Lock()

    def counting(delay):
        def chat(body, headers):
            with lock:
                in_flight["now"] += 1
                in_flight["most"] = max(in_flight["most"], in_flight["now"])
            time.sleep(delay)
            with lock:
                in_flight["now"] -= 1
            return Reply(200, completion("NONSPEECH"))
        return chat

    with StubServer(counting(0.3)) as slow, StubServer(counting(0.01)) as fast:
        model = backend(slow, fast, max_in_flight=2)
        answers = model.predict_batch(requests(24))
        model.close()
    assert all(a.label == "NONSPEECH" for a in answers)
    assert in_flight["most"] <= 4                          # 2 per endpoint
    slow_n, fast_n = len(slow.chat_requests()), len(fast.chat_requests())
    assert slow_n + fast_n == 24 and 1 <= slow_n < fast_n  # the idle endpoint takes the work


def test_an_endpoint_that_dies_mid_run_is_avoided_and_the_rest_answer():
    with StubServer(script()) as alive:
        dying = StubServer(script())
        with dying:
            model = backend(alive, dying, max_in_flight=2, max_retries=2)
        # dying is down now: the first request to meet it retries on alive; the rest avoid it.
        answers = model.predict_batch(requests(12))
        stats = model.timings()["endpoints"]
        model.close()
    assert [a.error for a in answers] == [None] * 12
    assert len(alive.chat_requests()) == 12 and stats[alive.url]["ok"] == 12
    assert 1 <= stats[dying.url]["requests"] <= 2      # the requests in flight when it was found dead


def test_logits_mode_against_a_server_that_returns_no_logprobs():
    class Words:  # /tokenize and /detokenize over a toy vocabulary
        vocab = ["SPEECH", " SPEECH", "speech", " speech", "Speech", " Speech",
                 "NON", " NON", "non", " non", "Non", " Non"]

        def encode(self, text, add_special_tokens=False):
            return [self.vocab.index(text)] if text in self.vocab else [self.vocab.index(text[:len(text) - 6])]

        def decode(self, ids):
            return "".join(self.vocab[i] for i in ids)

    with StubServer(script(), tokenizer=Words()) as stub:
        with pytest.raises(BackendError) as error:
            backend(stub, scoring="logits")
    assert "returned no log-probabilities" in str(error.value)
    assert "--qsm-scoring generate" in str(error.value)


@pytest.mark.parametrize("header, seconds", [("2", 2.0), ("0", 0.0), ("-3", 0.0), ("9999", 60.0),
                                             ("soon", None), (None, None)])
def test_retry_after_values(header, seconds):
    assert retry_after_seconds(header) == seconds


def test_retry_after_as_an_http_date():
    from email.utils import formatdate
    assert 8.0 <= retry_after_seconds(formatdate(time.time() + 10, usegmt=True)) <= 10.0
