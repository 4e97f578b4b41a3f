"""The served-model backend (``--qsm-model openai``): any OpenAI-compatible chat-completions
server (vLLM, transformers serve, a hosted API) as the model, over one or many endpoints.

endpoints (URLs, the start-up probe), transport (least-loaded leases, bounded in flight,
timeouts, retries), chat (request bodies, replies, log-probability scoring), credentials
(the API key: environment only, redacted everywhere). The prompt, the strict parser and the
answer-token renormalisation are the local Qwen2-Audio backend's own, imported, so a served
model and a local one are scored the same way. httpx2 is imported when the backend is built.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from qsm_eval.backends.audio_llm import MAX_NEW_TOKENS, PAD, PROMPT, SCORING, prompts
from qsm_eval.backends.audio_llm.parsing import parse_answer
from qsm_eval.backends.audio_llm.scoring import answer_tokens
from qsm_eval.backends.base import AudioRequest, Backend, BackendError, BackendIdentity, Prediction
from qsm_eval.backends.presentation import PRESENTATION_OPTIONS, PresentationPolicy, present_waveform
from qsm_eval.backends.served import chat, endpoints
from qsm_eval.backends.served.credentials import DEFAULT_KEY_VARIABLE, ApiKey
from qsm_eval.backends.served.transport import EndpointPool, RetryPolicy, ServedError
from qsm_eval.options import Option, at_least_one
from qsm_eval.versions import installed_version

# Batches the runner hands over, per request slot: enough to keep every slot busy while the
# previous batch's slowest answers come in, small enough that -x wastes little.
_BATCH_PER_SLOT = 2

ENDPOINT = Option("endpoint", str, None, "base URL of an OpenAI-compatible server (http://host:8000, "
                  "with or without /v1); repeat it or separate URLs by commas: requests go to the "
                  "least loaded", multiple=True)
SERVED_MODEL = Option("served_model", str, None, "model id to ask the servers for; default: the one "
                      "model every endpoint lists")
API_KEY_ENV = Option("api_key_env", str, DEFAULT_KEY_VARIABLE, "NAME of the environment variable "
                     "holding the API key (never the key itself); default OPENAI_API_KEY, no key "
                     "when it is unset")
MAX_IN_FLIGHT = Option("max_in_flight", int, 4, "requests in flight per endpoint, per process; "
                       "default 4", check=at_least_one, allowed="an integer >= 1")
REQUEST_TIMEOUT_S = Option("request_timeout_s", float, 60.0, "seconds a request may wait for the "
                           "server (each phase: connect, send, read); default 60",
                           check=lambda v: v > 0, allowed="a number > 0")
MAX_RETRIES = Option("max_retries", int, 4, "retries of a request after a 429, a 5xx, a timeout or "
                     "a dropped connection; default 4", check=lambda v: v >= 0, allowed="an integer >= 0")


class OpenAIChatBackend(Backend):
    name = "openai"
    # The prompt, scoring and padding options are the local audio LLM's: one meaning for both.
    options = (SCORING, PROMPT, *PRESENTATION_OPTIONS, MAX_NEW_TOKENS, ENDPOINT, SERVED_MODEL,
               API_KEY_ENV, MAX_IN_FLIGHT, REQUEST_TIMEOUT_S, MAX_RETRIES)

    def __init__(self, *, endpoint: list[str] | str | None = None, served_model: str | None = None,
                 api_key_env: str = API_KEY_ENV.default, scoring: str = SCORING.default,
                 prompt: str = PROMPT.default, pad_ms: int = PAD["pad_ms"],
                 pad_placement: str = PAD["pad_placement"], pad_fill: str = PAD["pad_fill"],
                 pad_level_db: float = PAD["pad_level_db"], max_new_tokens: int = MAX_NEW_TOKENS.default,
                 max_in_flight: int = MAX_IN_FLIGHT.default,
                 request_timeout_s: float = REQUEST_TIMEOUT_S.default,
                 max_retries: int = MAX_RETRIES.default, worker_index: int | None = None):
        try:
            import httpx2  # noqa: F401  (only checks that the extra is installed)
        except ImportError as exc:
            raise BackendError("--qsm-model openai needs httpx2: pip install 'qsm-eval[served]'") from exc
        if scoring not in SCORING.choices:
            raise BackendError(f"--qsm-scoring {scoring!r} is not one of {', '.join(SCORING.choices)}")
        self.scoring, self.max_new_tokens = scoring, int(max_new_tokens)
        self.policy = PresentationPolicy.from_options(pad_ms=pad_ms, pad_placement=pad_placement,
                                                      pad_fill=pad_fill, pad_level_db=pad_level_db)
        self.prompt = prompts.resolve_prompt(prompt)
        self.urls = endpoints.parse_endpoints(endpoint)
        self.api_key = ApiKey.from_environment(api_key_env)
        self.retry = RetryPolicy(max_retries=int(max_retries), timeout_s=float(request_timeout_s))
        self.max_in_flight = int(max_in_flight)
        self.pool = EndpointPool(self.urls, headers=self.api_key.headers(), policy=self.retry,
                                 max_in_flight=self.max_in_flight, redact=self.api_key.redact,
                                 first=worker_index or 0)
        self.max_batch_size = _BATCH_PER_SLOT * self.max_in_flight * len(self.urls)
        self._executor = ThreadPoolExecutor(max_workers=self.max_in_flight * len(self.urls),
                                            thread_name_prefix="qsm-openai")
        try:
            self.served_model = endpoints.choose_model(served_model, endpoints.probe(self.pool, self.api_key))
            self.answers, self.scorer = self._logits_setup() if scoring == "logits" else (None, None)
        except BaseException:
            self.close()
            raise

    # -- what the runner and run.json see ---------------------------------------------------

    def identity(self) -> BackendIdentity:
        return BackendIdentity(backend=self.name, model=self.served_model,
                               prompt_id=self.prompt.prompt_id, prompt_sha256=self.prompt_sha256)

    @property
    def prompt_sha256(self) -> str:
        """Of the prompt as sent (system, user text, answers): the server renders the chat."""
        sent = {"system": self.prompt.system, "user": self.prompt.user, "answers": self.prompt.answers}
        return hashlib.sha256(json.dumps(sent, sort_keys=True).encode("utf-8")).hexdigest()

    def _answer_description(self) -> dict[str, Any]:
        """What decides an answer: the keys of the prediction cache, and in run.json."""
        return {
            "backend": self.name, "model": self.served_model, "scoring": self.scoring,
            "max_new_tokens": self.max_new_tokens if self.scoring == "generate" else None,
            "prompt_id": self.prompt.prompt_id, "prompt_sha256": self.prompt_sha256,
            "answer_token_ids": None if self.answers is None else {
                "SPEECH": sorted(self.answers.speech), "NONSPEECH": sorted(self.answers.nonspeech)},
            "padding": self.policy.describe(),
        }

    def describe(self) -> dict[str, Any]:
        return {
            **self._answer_description(),
            "endpoints": list(self.urls), "prompt_system": self.prompt.system,
            "prompt_user": self.prompt.user, "answers": self.prompt.answers,
            "max_in_flight": self.max_in_flight, "request_timeout_s": self.retry.timeout_s,
            "max_retries": self.retry.max_retries,
            # Which variable the key came from, and whether there was one: never the key.
            "api_key_env": self.api_key.variable, "api_key_set": self.api_key.present,
            "httpx2": installed_version("httpx2"),
        }

    def fingerprint(self) -> dict[str, Any]:
        """Only what changes an answer: not the endpoints, limits or key, so that a run resumed
        against other hosts (or more of them) finds the answers already cached."""
        return {"describe": self._answer_description()}

    def timings(self) -> dict[str, Any]:
        """Per endpoint: requests sent (attempts), answered, retried and failed, for run.json."""
        return {"endpoints": {e.url: dict(e.stats) for e in self.pool.endpoints},
                "latency_definition": "per case: from its first attempt to its answer, retries included"}

    # -- predictions -------------------------------------------------------------------------

    def predict_batch(self, requests: list[AudioRequest]) -> list[Prediction]:
        futures = [self._executor.submit(self._predict_one, request) for request in requests]
        return [future.result() for future in futures]

    def _predict_one(self, request: AudioRequest) -> Prediction:
        waveform, padding = present_waveform(request, self.policy)
        started = time.perf_counter()
        try:
            prediction = self._ask(request.key, chat.messages(self.prompt, chat.wav_base64(waveform)))
        except (ServedError, chat.MalformedReply) as exc:
            prediction = Prediction.failed(self.api_key.redact(str(exc)))
        # The server's own count of what the model was shown is not in the reply.
        prediction.padding = padding
        prediction.latency_ms = 1000.0 * (time.perf_counter() - started)
        return prediction

    def _ask(self, key: str, messages: list[dict]) -> Prediction:
        if self.scoring == "generate":
            reply, _ = self.pool.post_json(
                "/v1/chat/completions", chat.generate_body(self.served_model, messages, self.max_new_tokens), key)
            text = chat.reply_text(reply)
            label, status = parse_answer(text, self.prompt)
            return Prediction(label=label, p_speech=None, raw_output=text, parse_status=status)
        reply, endpoint = self.pool.post_json(
            "/v1/chat/completions", chat.logits_body(self.served_model, messages, self.answers), key)
        entries = chat.first_token_logprobs(reply)
        if entries is None:
            raise chat.MalformedReply(self._no_logprobs(endpoint.url))
        p_speech, mass, top = self.scorer.score(entries)
        if p_speech is None:
            return Prediction(label="UNKNOWN", p_speech=None, parse_status="logits_no_answer", answer_mass=0.0,
                              raw_output=f"UNKNOWN (no answer token among the {len(entries)} returned; top token {top!r})")
        label = "SPEECH" if p_speech >= 0.5 else "NONSPEECH"
        return Prediction(label=label, p_speech=p_speech, confidence=p_speech if label == "SPEECH" else 1 - p_speech,
                          raw_output=f"{label} (answer mass {mass:.4f}; top token {top!r})", parse_status="logits",
                          answer_mass=mass)

    def _logits_setup(self):
        """The answer tokens (through the server's tokenizer) and one probe that logprobs come back."""
        def post(path, body):
            return self.pool.post_json(path, body, key=f"setup:{path}")[0]

        tokenizer = chat.ServerTokenizer(post, self.served_model)
        try:
            answers = answer_tokens(tokenizer, self.prompt)
            texts = {i: tokenizer.decode(i) for i in sorted(answers.speech | answers.nonspeech)}
            scorer = chat.AnswerScorer(answers, texts)
            import numpy as np
            probe = chat.messages(self.prompt, chat.wav_base64(np.zeros(1600, dtype=np.float32)))
            reply, endpoint = self.pool.post_json(
                "/v1/chat/completions", chat.logits_body(self.served_model, probe, answers), key="setup:probe")
        except (ServedError, chat.MalformedReply) as exc:
            raise BackendError(self.api_key.redact(
                f"--qsm-scoring logits needs a server that tokenizes (/tokenize, /detokenize) and returns "
                f"log-probabilities, as vLLM does; {exc}; use --qsm-scoring generate with this server")) from None
        if chat.first_token_logprobs(reply) is None:
            raise BackendError(self._no_logprobs(endpoint.url))
        return answers, scorer

    def _no_logprobs(self, url: str) -> str:
        return (f"{url} returned no log-probabilities for model {self.served_model!r} (a server such as "
                f"transformers serve ignores logprobs); --qsm-scoring logits needs them (vLLM returns them): "
                f"use --qsm-scoring generate with this server")

    def close(self) -> None:
        if getattr(self, "_executor", None) is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        if getattr(self, "pool", None) is not None:
            self.pool.close()


__all__ = ["OpenAIChatBackend"]
