"""Logits mode against vLLM's documented response shape, computed from the real tiny model.

`transformers serve` returns no log-probabilities, so this stub answers /tokenize,
/detokenize and chat completions the way vLLM documents them (``logprobs.content[0].
top_logprobs``; ``logprob_token_ids`` names the tokens to score; ``return_tokens_as_token_ids``
writes tokens as ``token_id:N``), with log-probabilities from the tiny Qwen2-Audio model's own
next-token distribution for the clip it received. The served p_speech must then be that
distribution's first-token renormalisation, to float precision: the answer tokens the local
backend's ``answer_tokens`` gives, and the one ``renormalise``. (A server gives only the first
step's log-probabilities; the local backend itself scores whole answers, tests/audio_llm.)
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
        logprobs = first_step_log_probs(loaded, text, wave)
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


def first_step_log_probs(loaded, text, wave):
    """The tiny model's next-token log-probabilities after ``text`` with ``wave`` (fast encoder path)."""
    import torch

    from qsm_eval.backends.audio_llm.encoder import embed_inputs, frames_needed
    from qsm_eval.backends.audio_llm.inputs import build_inputs
    from qsm_eval.backends.audio_llm.presentation import mel_frames
    from qsm_eval.backends.audio_llm.scoring import prefill

    model = loaded.model
    with torch.inference_mode():
        batch = build_inputs(loaded.processor, text, [wave], frames=frames_needed(mel_frames(len(wave))))
        embeds = embed_inputs(model, batch.input_ids, batch.input_features, batch.feature_attention_mask)
        return prefill(model, {"inputs_embeds": embeds}, batch.attention_mask, batch.position_ids).log_probs[0]


def first_token_answers(local, request):
    """(p_speech, mass) of ``request`` from first-token probabilities of the local model."""
    from qsm_eval.backends.audio_llm.scoring import renormalise

    wave = request.waveform
    probs = first_step_log_probs(local.loaded, local.rendered.text, wave).exp()
    tokens = first_tokens(local)
    return renormalise(float(probs[sorted(tokens.speech)].sum()), float(probs[sorted(tokens.nonspeech)].sum()))


def first_tokens(local):
    from qsm_eval.backends.audio_llm.scoring import answer_tokens

    return answer_tokens(local.processor.tokenizer, local.prompt)


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
    assert [p.error for p in got] == [None] * len(clips)
    assert served.answers == first_tokens(local)     # the same answer tokens, from the server's tokenizer
    for mine, request in zip(got, clips):
        p_speech, mass = first_token_answers(local, request)
        assert mine.p_speech == pytest.approx(p_speech, abs=1e-5)
        assert mine.label == ("SPEECH" if p_speech >= 0.5 else "NONSPEECH") and mine.parse_status == "logits"
        assert answer_mass(mine.raw_output) == pytest.approx(mass, abs=1e-4)
    assert len({round(p.p_speech, 4) for p in got}) > 1   # the scores depend on the clip
    body = stub.chat_requests()[-1].body
    assert body["max_tokens"] == 1 and body["logprobs"] is True
    tokens = first_tokens(local)
    assert body["logprob_token_ids"] == sorted(tokens.speech | tokens.nonspeech)


def test_a_server_that_lists_no_answer_token_gives_unknown_not_a_guess(local, clips):
    tokens = first_tokens(local)
    answers = tokens.speech | tokens.nonspeech
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
