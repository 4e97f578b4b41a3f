"""Logits mode against vLLM's documented response shape, computed from the real tiny model.

`transformers serve` returns no log-probabilities, so this stub answers /tokenize,
/detokenize and chat completions the way vLLM documents them (``logprobs.content[0].
top_logprobs``; ``logprob_token_ids`` names the tokens to score; ``return_tokens_as_token_ids``
writes tokens as ``token_id:N``), with log-probabilities from the tiny Qwen2-Audio model's own
next-token distribution for the clip it received. The served p_speech must then be the local
backend's, to float precision: same answer tokens, same renormalisation.
"""

from __future__ import annotations

import base64
import io
import re

import pytest

from qsm_eval.backends import create_backend
from qsm_eval.backends.audio_llm import Qwen2AudioBackend

from .stub_server import Reply, StubServer, completion


def vllm_chat(loaded, *, token_ids_as_text: bool):
    """A chat handler in vLLM's shape over ``loaded`` (the tiny model and its processor)."""
    import soundfile as sf
    import torch

    from qsm_eval.backends.audio_llm.encoder import frames_needed
    from qsm_eval.backends.audio_llm.inputs import build_inputs
    from qsm_eval.backends.audio_llm.presentation import mel_frames
    from qsm_eval.backends.audio_llm.scoring import last_hidden_states

    processor, model = loaded.processor, loaded.model

    def chat(body, headers):
        system, user = body["messages"]
        audio, question = user["content"]
        wave, rate = sf.read(io.BytesIO(base64.b64decode(audio["input_audio"]["data"])), dtype="float32")
        assert rate == 16000
        text = processor.apply_chat_template(
            [{"role": "system", "content": system["content"]},
             {"role": "user", "content": [{"type": "audio", "audio_url": "clip"},
                                          {"type": "text", "text": question["text"]}]}],
            add_generation_prompt=True, tokenize=False)
        with torch.inference_mode():   # the fast encoder path, as the local backend below uses
            batch = build_inputs(processor, text, [wave], frames=frames_needed(mel_frames(len(wave))))
            logprobs = torch.log_softmax(model.lm_head(last_hidden_states(model, batch, fast_encoder=True))[0], -1)
        named = body.get("logprob_token_ids")
        ids = named if named else torch.topk(logprobs, body["top_logprobs"]).indices.tolist()

        def token(i):
            if body.get("return_tokens_as_token_ids") and not token_ids_as_text:
                return f"token_id:{i}"
            return processor.tokenizer.decode([i])

        chosen = int(logprobs.argmax())
        entry = {"token": token(chosen), "logprob": float(logprobs[chosen]), "bytes": None,
                 "top_logprobs": [{"token": token(i), "logprob": float(logprobs[i]), "bytes": None} for i in ids]}
        return Reply(200, completion(processor.tokenizer.decode([chosen]), {"content": [entry]}))
    return chat


class Tokenizer:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def encode(self, text, add_special_tokens=False):
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens)

    def decode(self, ids):
        return self.tokenizer.decode(ids)


@pytest.fixture(scope="module")
def local(tiny_checkpoint):
    backend = Qwen2AudioBackend(model_path=str(tiny_checkpoint), device="cpu", dtype="float32",
                                scoring="logits", fast_encoder=True)
    yield backend
    backend.close()


def answer_mass(raw_output: str) -> float:
    return float(re.search(r"answer mass ([0-9.]+)", raw_output).group(1))


@pytest.mark.parametrize("token_ids_as_text", [False, True], ids=["token_id:N", "token text"])
def test_served_logits_are_the_local_logits(local, clips, token_ids_as_text):
    loaded = local.loaded
    with StubServer(vllm_chat(loaded, token_ids_as_text=token_ids_as_text),
                    tokenizer=Tokenizer(loaded.processor.tokenizer)) as stub:
        served = create_backend("openai", {"endpoint": stub.url, "scoring": "logits"})
        got = served.predict_batch(clips)
        served.close()
    expected = local.predict_batch(clips)
    assert [p.error for p in got] == [None] * len(clips)
    assert served.answers == local.answers            # the same answer tokens, from the server's tokenizer
    for mine, theirs in zip(got, expected):
        assert mine.p_speech == pytest.approx(theirs.p_speech, abs=1e-5)
        assert mine.label == theirs.label and mine.parse_status == "logits"
        assert answer_mass(mine.raw_output) == pytest.approx(answer_mass(theirs.raw_output), abs=1e-4)
    assert len({round(p.p_speech, 4) for p in got}) > 1   # the scores depend on the clip
    body = stub.chat_requests()[-1].body
    assert body["max_tokens"] == 1 and body["logprobs"] is True
    assert body["logprob_token_ids"] == sorted(local.answers.speech | local.answers.nonspeech)


def test_a_server_that_lists_no_answer_token_gives_unknown_not_a_guess(local, clips):
    answers = local.answers.speech | local.answers.nonspeech
    other = next(i for i in range(len(local.processor.tokenizer)) if i not in answers)
    entry = {"token": f"token_id:{other}", "logprob": -0.1, "top_logprobs": [
        {"token": f"token_id:{other}", "logprob": -0.1}]}   # an older server: its top token only

    with StubServer(lambda body, headers: Reply(200, completion("x", {"content": [entry]})),
                    tokenizer=Tokenizer(local.processor.tokenizer)) as stub:
        served = create_backend("openai", {"endpoint": stub.url, "scoring": "logits"})
        [prediction] = served.predict_batch(clips[:1])
        served.close()
    assert prediction.label == "UNKNOWN" and prediction.p_speech is None and prediction.error is None
    assert prediction.parse_status == "logits_no_answer" and f"token_id:{other}" in prediction.raw_output
