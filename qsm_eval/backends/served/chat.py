"""Chat-completions bodies for one clip, and what comes back: the text or the answer scores.

Audio goes inline as an ``input_audio`` part: a base64 WAV of 32-bit float samples, so that
the server decodes exactly the samples a local backend would see (16-bit PCM would round
them). Logits mode asks for one token with its log-probabilities, in vLLM's shape:
``logprobs``/``top_logprobs``, the answer tokens named in ``logprob_token_ids`` (servers that
know it return exactly those) and ``return_tokens_as_token_ids`` (tokens come back as
``token_id:N``, so no text has to be matched); a server that ignores both still answers with
top tokens as text, which are matched to the answers through their detokenized forms.
"""

from __future__ import annotations

import math
import re
from typing import Any

from qsm_eval.audio import wav_base64  # noqa: F401  (the served backend's audio encoding)
from qsm_eval.backends.audio_llm.prompts import Prompt
from qsm_eval.backends.audio_llm.scoring import AnswerTokens, renormalise

# The most top tokens OpenAI's API returns (vLLM's default max_logprobs too).
TOP_LOGPROBS = 20
_TOKEN_ID = re.compile(r"^token_id:(\d+)$")


class MalformedReply(ValueError):
    """A 200 reply without what was asked for."""


def messages(prompt: Prompt, audio_b64: str) -> list[dict]:
    """The prompt's chat (explicit system turn, then the clip and the question), as sent."""
    return [
        {"role": "system", "content": prompt.system},
        {"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": audio_b64, "format": "wav"}},
            {"type": "text", "text": prompt.user}]},
    ]


def generate_body(model: str, chat: list[dict], max_new_tokens: int) -> dict[str, Any]:
    return {"model": model, "messages": chat, "max_tokens": max_new_tokens, "temperature": 0.0}


def logits_body(model: str, chat: list[dict], answers: AnswerTokens) -> dict[str, Any]:
    return {"model": model, "messages": chat, "max_tokens": 1, "temperature": 0.0,
            "logprobs": True, "top_logprobs": TOP_LOGPROBS,
            "logprob_token_ids": sorted(answers.speech | answers.nonspeech),
            "return_tokens_as_token_ids": True}


def reply_text(reply: dict) -> str:
    """The generated text of the first choice."""
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise MalformedReply(f"reply has no choices[0].message.content: {_keys(reply)}") from None
    if content is None:
        return ""
    if not isinstance(content, str):
        raise MalformedReply(f"choices[0].message.content is a {type(content).__name__}, not text")
    return content


def first_token_logprobs(reply: dict) -> list[dict] | None:
    """The scored alternatives for the first generated token, or None when the server sent none."""
    try:
        choice = reply["choices"][0]
    except (KeyError, IndexError, TypeError):
        raise MalformedReply(f"reply has no choices[0]: {_keys(reply)}") from None
    content = (choice.get("logprobs") or {}).get("content") if isinstance(choice, dict) else None
    if not content:
        return None
    first = content[0]
    entries = list(first.get("top_logprobs") or [])
    if "token" in first and "logprob" in first:
        entries.append({"token": first["token"], "logprob": first["logprob"]})
    return entries


class AnswerScorer:
    """p_speech from a server's log-probabilities, over the same answer tokens as locally."""

    def __init__(self, answers: AnswerTokens, token_texts: dict[int, str]):
        self.answers = answers
        # For servers that return token text rather than token_id:N.
        self._label_of_text: dict[str, str] = {}
        for label, ids in (("SPEECH", answers.speech), ("NONSPEECH", answers.nonspeech)):
            for token_id in ids:
                self._label_of_text.setdefault(token_texts[token_id], label)

    def _label(self, token: str) -> tuple[str | None, str]:
        match = _TOKEN_ID.match(token)
        if match:
            token_id = int(match.group(1))
            if token_id in self.answers.speech:
                return "SPEECH", f"id:{token_id}"
            if token_id in self.answers.nonspeech:
                return "NONSPEECH", f"id:{token_id}"
            return None, f"id:{token_id}"
        return self._label_of_text.get(token), f"text:{token}"

    def score(self, entries: list[dict]) -> tuple[float | None, float, str]:
        """(p_speech, answer mass, top token) from the first token's alternatives."""
        mass = {"SPEECH": 0.0, "NONSPEECH": 0.0}
        seen: set[str] = set()
        top, top_logprob = "", -math.inf
        for entry in entries:
            try:
                token, logprob = str(entry["token"]), float(entry["logprob"])
            except (KeyError, TypeError, ValueError):
                raise MalformedReply(f"a log-probability entry lacks token/logprob: {entry!r}") from None
            if logprob > top_logprob:
                top, top_logprob = token, logprob
            label, identity = self._label(token)
            if label is None or identity in seen:
                continue  # another token, or the chosen token listed again among the top ones
            seen.add(identity)
            mass[label] += math.exp(logprob)
        if mass["SPEECH"] + mass["NONSPEECH"] == 0.0:
            return None, 0.0, top
        p_speech, total = renormalise(mass["SPEECH"], mass["NONSPEECH"])
        return p_speech, total, top


class ServerTokenizer:
    """The served model's tokenizer through vLLM's /tokenize and /detokenize, with the two
    methods the local backend's ``answer_tokens`` calls: the same answer ids, from the server."""

    def __init__(self, post, model: str):
        self._post = post      # (path, body) -> JSON reply
        self._model = model

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        reply = self._post("/tokenize", {"model": self._model, "prompt": text,
                                         "add_special_tokens": add_special_tokens})
        tokens = reply.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise MalformedReply(f"/tokenize reply has no list of token ids: {_keys(reply)}")
        return tokens

    def decode(self, token_id: int) -> str:
        reply = self._post("/detokenize", {"model": self._model, "tokens": [token_id]})
        text = reply.get("prompt")
        if not isinstance(text, str):
            raise MalformedReply(f"/detokenize reply has no prompt text: {_keys(reply)}")
        return text

    def convert_ids_to_tokens(self, token_id: int) -> str:
        return self.decode(token_id)


def _keys(reply: Any) -> str:
    return f"keys {sorted(reply)}" if isinstance(reply, dict) else f"a {type(reply).__name__}"
