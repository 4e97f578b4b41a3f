"""Tiny encoder checkpoints (Whisper, AST, wav2vec2-family), built offline once per session.

Each is written with save_pretrained into a session directory and loaded from there with
HF_HUB_OFFLINE=1 through the backends' real loaders, exactly as a user's local checkpoint
would be. Random weights from fixed seeds; init ranges larger than the usual 0.02 so that
the random models' answers depend visibly on the audio.
"""

from __future__ import annotations

from pathlib import Path

import pytest
# pytester's in-process runs drop modules first imported inside them; import what the
# backends use once, for the whole session (see tests/conftest.py).
import sklearn.linear_model  # noqa: F401
import sklearn.model_selection  # noqa: F401
import transformers  # noqa: F401
from transformers import (ASTForAudioClassification, AutoModel,  # noqa: F401
                          WhisperForConditionalGeneration)

from qsm_eval.backends.encoder_synthetic import build_ast, build_speech_encoder, build_whisper
from qsm_eval.segments import SegmentSet

EVAL_SUITE = Path(__file__).resolve().parents[2] / "evals" / "test_speech_detection.py"


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One torch thread: the suite runs under xdist on two cores, and two threads per worker
    measured 10-30x slower here than one (oversubscription)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory) -> Path:
    """Tiny Whisper with the real 30 s window and <|nospeech|> (large-v3's spelling, 128 mels)."""
    return build_whisper(tmp_path_factory.mktemp("tiny-whisper"), num_mel_bins=128)


@pytest.fixture(scope="session")
def fast_whisper(tmp_path_factory) -> Path:
    """Tiny Whisper with a 2 s window and the older <|nocaptions|> spelling (80 mels): fast runs."""
    return build_whisper(tmp_path_factory.mktemp("fast-whisper"), no_speech="<|nocaptions|>",
                         window_s=2, seed=1)


@pytest.fixture(scope="session")
def tiny_ast(tmp_path_factory) -> Path:
    """Tiny AST with AudioSet names; 256 frames (2.56 s) instead of 1024 keeps it fast."""
    return build_ast(tmp_path_factory.mktemp("tiny-ast"), max_length=256)


@pytest.fixture(scope="session")
def tiny_wav2vec2(tmp_path_factory) -> Path:
    return build_speech_encoder(tmp_path_factory.mktemp("tiny-wav2vec2"), "wav2vec2")


@pytest.fixture(scope="session")
def probe_set(tmp_path_factory, make_clip, make_segment_set):
    """30 clips from 10 sources (3 each): tones SPEECH, noise NONSPEECH; sources 0-6 train,
    7-9 test; two 20 ms clips too short for the encoder."""
    directory = tmp_path_factory.mktemp("probe-set")
    rows, clips = [], {}
    for source in range(10):
        for take in range(3):
            segment_id = len(rows)
            label = "SPEECH" if (source + take) % 2 else "NONSPEECH"
            duration = 20 if segment_id in (4, 25) else (60, 120, 200)[take]
            path = f"audio/{segment_id:03d}.wav"
            clips[path] = make_clip("tone" if label == "SPEECH" else "noise", duration, seed=segment_id)
            rows.append(dict(segment_id=segment_id, audio_path=path, label=label, duration_ms=duration,
                             dataset="probe", source_id=f"rec{source}",
                             split="train" if source < 7 else "test"))
    return SegmentSet.load(make_segment_set(directory, rows, clips))


def run_demo(pytester, model: str, checkpoint: Path, out: Path, *args):
    """`pytest evals --qsm-model MODEL --qsm-model-path CHECKPOINT` on the bundled demo set."""
    pytester.makepyfile(test_speech_detection=EVAL_SUITE.read_text())
    return pytester.runpytest(
        "-p", "no:cacheprovider", "--qsm-model", model, "--qsm-model-path", str(checkpoint),
        "--qsm-device", "cpu", "--qsm-out", str(out), "--qsm-summary", "none", *args)


@pytest.fixture(scope="session", name="run_demo")
def run_demo_fixture():
    return run_demo
