"""Every profile on its own tiny checkpoint: prompt text, chat-template source, and p_speech
checked against transformers called directly (the family's processor, then one plain forward
of the model over prompt + answer for every spelling)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch

from qsm_eval.backends.audio_llm import AudioLlmBackend, Qwen2AudioBackend
from qsm_eval.backends.audio_llm.synthetic import TINY_PROFILES
from qsm_eval.backends.base import BackendError

TOLERANCE = 1e-5   # float32


def load(checkpoint, **settings) -> AudioLlmBackend:
    return AudioLlmBackend(model_path=str(checkpoint), device="cpu", dtype="float32", **settings)


@pytest.mark.parametrize("profile", TINY_PROFILES)
def test_each_profile_answers_as_transformers_computes(tiny_checkpoints, mixed_requests, profile,
                                                      direct_answer_probabilities):
    backend = load(tiny_checkpoints[profile])            # profile read off the checkpoint
    assert backend.profile.name == profile and backend.describe()["profile"] == profile
    chosen = [mixed_requests[i] for i in (0, 1, 4)]      # 40 ms tone, 1 s noise, 200 ms silence
    predictions = backend.predict_batch(chosen)
    for prediction, request in zip(predictions, chosen):
        speech, nonspeech = direct_answer_probabilities(backend, request.waveform)
        p_speech, mass = speech / (speech + nonspeech), speech + nonspeech
        assert prediction.error is None and prediction.parse_status == "logits"
        assert prediction.p_speech == pytest.approx(p_speech, abs=TOLERANCE)
        assert prediction.answer_mass == pytest.approx(mass, rel=1e-4)
    assert len({round(p.p_speech, 6) for p in predictions}) == 3           # the audio moves p_speech
    # One token per 40 ms; Voxtral: every clip fills one 30 s window of 375 tokens.
    assert [p.n_audio_tokens for p in predictions] == ([375] * 3 if profile == "voxtral" else [1, 25, 5])


def test_prompt_text_and_template_source_per_profile(tiny_checkpoints):
    instruct, base, flamingo, omni, voxtral = (load(tiny_checkpoints[p]) for p in TINY_PROFILES)
    assert instruct.describe()["chat_template"] == "checkpoint"
    assert instruct.rendered.text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    # The base model: its documented raw prompt, no chat template, no system turn.
    assert base.describe()["chat_template"] == "none"
    assert base.rendered.text == ("<|audio_bos|><|AUDIO|><|audio_eos|>Does this audio clip contain human "
                                  "speech? Answer with exactly one word: SPEECH if it contains speech, "
                                  "NONSPEECH if it does not.")
    assert flamingo.describe()["chat_template"] == "checkpoint"
    assert "<|im_start|>user\n<sound>Does this audio" in flamingo.rendered.text
    assert flamingo.rendered.text.endswith("<|im_start|>assistant\n")
    # Qwen2.5-Omni: the audio wrapped in its own markers where it stands in the turn, and our
    # explicit system turn in place of the template's "virtual human" default.
    assert omni.describe()["chat_template"] == "checkpoint"
    assert "<|im_start|>user\n<|audio_bos|><|AUDIO|><|audio_eos|>Does this audio" in omni.rendered.text
    assert omni.rendered.text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    assert "virtual human" not in omni.rendered.text
    # Voxtral: mistral-common's encoding of the chat, which refuses a system turn beside audio.
    assert voxtral.describe()["chat_template"] == "mistral-common (tekken.json)"
    assert voxtral.rendered.text == ("<s>[INST][BEGIN_AUDIO][AUDIO]Does this audio clip contain human speech? "
                                     "Answer with exactly one word: SPEECH if it contains speech, NONSPEECH "
                                     "if it does not.[/INST]")
    assert len({b.prompt_sha256 for b in (instruct, base, flamingo, omni, voxtral)}) == 5


def test_instruct_profile_on_a_checkpoint_without_template_says_whose_template_it_used(tiny_checkpoints):
    # --qsm-model qwen2-audio on the base checkpoint: transformers' Instruct template, and run.json says so.
    backend = Qwen2AudioBackend(model_path=str(tiny_checkpoints["qwen2-audio-base"]), device="cpu")
    assert backend.profile.name == "qwen2-audio" and backend.describe()["chat_template"] == "profile default"
    assert backend.rendered.text.startswith("<|im_start|>system")


def test_profile_of_another_family_is_refused_before_loading(tiny_checkpoints):
    with pytest.raises(BackendError, match="model_type 'audioflamingo3', profile qwen2-audio expects 'qwen2_audio'"):
        load(tiny_checkpoints["audio-flamingo-3"], llm_profile="qwen2-audio")
    with pytest.raises(BackendError, match="model_type 'qwen2_audio', profile audio-flamingo-3 expects"):
        load(tiny_checkpoints["qwen2-audio"], llm_profile="audio-flamingo-3")
    with pytest.raises(BackendError, match="model_type 'qwen2_5_omni', profile audio-flamingo-3 expects"):
        load(tiny_checkpoints["qwen2.5-omni"], llm_profile="audio-flamingo-3")
    with pytest.raises(BackendError, match="model_type 'qwen2_audio', profile qwen2.5-omni expects 'qwen2_5_omni'"):
        load(tiny_checkpoints["qwen2-audio"], llm_profile="qwen2.5-omni")
    with pytest.raises(BackendError, match="model_type 'voxtral', profile qwen2.5-omni expects 'qwen2_5_omni'"):
        load(tiny_checkpoints["voxtral"], llm_profile="qwen2.5-omni")
    with pytest.raises(BackendError, match="not the qwen2-audio backend's profile"):
        Qwen2AudioBackend(model_path=str(tiny_checkpoints["qwen2-audio"]), llm_profile="audio-flamingo-3")


def test_fast_encoder_is_refused_where_the_family_has_none(tiny_checkpoints):
    with pytest.raises(BackendError, match="profile audio-flamingo-3 has none"):
        load(tiny_checkpoints["audio-flamingo-3"], fast_encoder=True)


def test_omni_loads_the_thinker_alone_and_leaves_the_speech_output_unread(tiny_checkpoints, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    checkpoint = tiny_checkpoints["qwen2.5-omni"]
    with safe_open(checkpoint / "model.safetensors", "pt") as weights:
        parts = {key.split(".")[0] for key in weights.keys()}
    assert parts == {"thinker", "talker", "token2wav"}             # as the real checkpoint holds
    backend = load(checkpoint)
    assert type(backend.loaded.model).__name__ == "Qwen2_5OmniThinkerForConditionalGeneration"
    # Weights outside the thinker and the two speech-output parts are still refused.
    broken = tmp_path / "extra"
    shutil.copytree(checkpoint, broken)
    tensors = load_file(broken / "model.safetensors")
    save_file({**tensors, "thinker.model.extra_head.weight": torch.zeros(2, 2)},
              broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(BackendError, match=r"1 unexpected keys \(model\.\S*extra_head\.weight\)"):
        load(broken)


@pytest.mark.parametrize("profile, module, extra", [("qwen2.5-omni", "torchvision", "omni"),
                                                     ("voxtral", "mistral_common", "voxtral")])
def test_a_family_without_its_processor_package_is_one_clear_line(tiny_checkpoints, profile, module, extra):
    # A process where the package cannot be imported, as on an install without the extra.
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            "from qsm_eval.backends.audio_llm import AudioLlmBackend\n"
            "from qsm_eval.backends.base import BackendError\n"
            "try:\n"
            f"    AudioLlmBackend(model_path={str(tiny_checkpoints[profile])!r}, device='cpu')\n"
            "except BackendError as exc:\n"
            "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"profile {profile} needs {module}, which does not import here" in out
    assert f"pip install 'qsm-eval[{extra}]'" in out
