"""Tiny audio-LLM checkpoints, built offline and loaded through the backend's real loader.

The checkpoint (a few small layers, random weights from a fixed seed, a byte-level BPE
tokenizer with the real special tokens and chat template, a WhisperFeatureExtractor) is
written once per session with save_pretrained; every backend here loads it from that
directory with HF_HUB_OFFLINE=1, exactly as a user's local checkpoint would load.
"""

from __future__ import annotations

import base64
import io
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from qsm_eval.backends import create_backend
from qsm_eval.backends.audio_llm import Qwen2AudioBackend
from qsm_eval.backends.audio_llm.synthetic import save_tiny_checkpoint

# The toy tokenizers are trained in the test process (tokenizers' Rust thread pool), beside
# torch's threads and pytester runs: keep the trainer single-threaded.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Larger than the usual 0.02 so that the random model's answers depend visibly on the audio.
TINY_INIT_RANGE = 0.2


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """Directory of the tiny Qwen2-Audio checkpoint (model, tokenizer, processor)."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny-qwen2-audio"), seed=0,
                                init_range=TINY_INIT_RANGE)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory, tiny_checkpoint) -> dict[str, Path]:
    """profile name -> directory of a tiny checkpoint of that family (built once, on first use)."""
    built = {"qwen2-audio": tiny_checkpoint}

    class Lazy(dict):
        def __missing__(self, profile):
            # Built in a process of its own: building one in an xdist worker that had already
            # run pytester sessions crashed it (a segfault in native code, not investigated).
            directory = tmp_path_factory.mktemp(f"tiny-{profile}")
            code = ("from qsm_eval.backends.audio_llm.synthetic import save_tiny_checkpoint; "
                    f"save_tiny_checkpoint({str(directory)!r}, seed=0, init_range={TINY_INIT_RANGE}, "
                    f"profile={profile!r})")
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
            self[profile] = directory
            return directory
    return Lazy(built)


@pytest.fixture(scope="session")
def make_backend(tiny_checkpoint):
    """Factory: make_backend(scoring="generate", fast_encoder=True, ...) -> a loaded backend on CPU."""
    def make(**settings) -> Qwen2AudioBackend:
        base = {"model_path": str(tiny_checkpoint), "device": "cpu", "dtype": "float32"}
        return create_backend("qwen2-audio", {**base, **settings})
    return make


@pytest.fixture(scope="session")
def make_segments(make_segment_set, make_clip):
    """make_segments(directory, durations=(20, 100, 400)): a small segment set of tones
    labelled SPEECH and noise labelled NONSPEECH, per duration."""
    def make(directory: Path, durations=(20, 100, 400)) -> Path:
        records, clips = [], {}
        for duration in durations:
            for label, kind in (("SPEECH", "tone"), ("NONSPEECH", "noise")):
                segment_id = len(records)
                path = f"audio/{segment_id:03d}.wav"
                clips[path] = make_clip(kind, duration, segment_id)
                records.append(dict(segment_id=segment_id, audio_path=path, label=label,
                                    duration_ms=duration, dataset="synth", source_id=f"rec{segment_id}"))
        return make_segment_set(directory, records, clips)
    return make


@pytest.fixture(scope="session")
def direct_answer_probabilities():
    """The oracle of the scoring tests: (P(SPEECH), P(NONSPEECH)) of a backend's prompt for one
    clip, from transformers alone (the family's processor, then one plain forward of the model
    over prompt + answer for every spelling), no cache and no scoring code of ours."""
    def probabilities(backend, waveform) -> tuple[float, float]:
        processor, model = backend.processor, backend.loaded.model
        if type(processor).__name__ == "VoxtralProcessor":
            # Voxtral's processor takes audio only inside a chat (mistral-common reads the file).
            wav = io.BytesIO()
            sf.write(wav, waveform, 16000, format="WAV", subtype="FLOAT")
            chat = [{"role": "user", "content": [
                {"type": "audio", "base64": base64.b64encode(wav.getvalue()).decode()},
                {"type": "text", "text": backend.prompt.user}]}]
            prompt = processor.apply_chat_template([chat], tokenize=True, return_dict=True, return_tensors="pt")
        else:
            prompt = processor(text=[backend.rendered.text], audio=[waveform], sampling_rate=16000,
                               return_tensors="pt")
        start = prompt["input_ids"].shape[1] - 1
        totals = []
        for sequences in (backend.answers.speech, backend.answers.nonspeech):
            total = 0.0
            for sequence in sequences:
                ids = torch.cat([prompt["input_ids"], torch.tensor([sequence])], dim=-1)
                inputs = {**prompt, "input_ids": ids, "attention_mask": torch.ones_like(ids)}
                with torch.no_grad():
                    logits = model(**inputs).logits[0].float()
                log_probs = torch.log_softmax(logits[start:start + len(sequence)], dim=-1)
                total += math.exp(sum(log_probs[i, token].item() for i, token in enumerate(sequence)))
            totals.append(total)
        return totals[0], totals[1]
    return probabilities
