"""Batch invariance of every encoder backend: a clip's p_speech does not depend on its batch.

Tolerances by dtype: 1e-5 in float32; in bfloat16 about 2e-3 (an 8-bit mantissa: a batch of
another size takes other kernels and summation orders), measured on these tiny models.
"""

from __future__ import annotations

import numpy as np
import pytest

from qsm_eval.backends.audio_classification import AudioClassificationBackend
from qsm_eval.backends.linear_probe import LinearProbeBackend
from qsm_eval.backends.whisper import WhisperBackend

TOLERANCES = {"float32": 1e-5, "bfloat16": 2e-3}


@pytest.fixture(scope="module")
def backends(fast_whisper, tiny_ast, tiny_wav2vec2, probe_set):
    """name -> (backend class, checkpoint, extra options)."""
    return {"whisper": (WhisperBackend, fast_whisper, {}),
            "audio-classification": (AudioClassificationBackend, tiny_ast, {}),
            "linear-probe": (LinearProbeBackend, tiny_wav2vec2, {"probe_train": str(probe_set.directory)})}


@pytest.mark.parametrize("dtype", sorted(TOLERANCES))
@pytest.mark.parametrize("name", ["whisper", "audio-classification", "linear-probe"])
def test_batched_and_one_by_one_agree(backends, mixed_requests, name, dtype):
    cls, checkpoint, options = backends[name]
    backend = cls(model_path=str(checkpoint), device="cpu", dtype=dtype, **options)
    batched = [a.p_speech for a in backend.predict_batch(mixed_requests)]
    alone = [backend.predict_batch([r])[0].p_speech for r in mixed_requests]
    np.testing.assert_allclose(batched, alone, atol=TOLERANCES[dtype])
    assert backend.describe()["dtype"] == dtype


def test_whisper_features_prepared_ahead_give_the_same_answers(fast_whisper, probe_set):
    """The runner prepares Whisper's features (on the CPU) on its thread while the model
    computes the batch before: the same answers as a plain run, bucketed or not."""
    from qsm_eval.runner import Runner

    backend = WhisperBackend(model_path=str(fast_whisper), device="cpu", dtype="float32", batch_size=4)
    segments = list(probe_set)
    runs = {}
    for options in ((1, False), (1, True), (4, True)):
        runner = Runner(backend, batch_size=4, bucket_window=options[0], overlap=options[1])
        runs[options] = [runner.predict(s, segments[i + 1:]).prediction for i, s in enumerate(segments)]
        assert runner.stats["prepared_ahead"] == (runner.stats["formed_batches"] - 1) * options[1]
        runner.close()
    plain = [p.p_speech for p in runs[1, False]]
    assert [p.p_speech for p in runs[1, True]] == plain
    np.testing.assert_allclose([p.p_speech for p in runs[4, True]], plain, atol=TOLERANCES["float32"])
    assert [p.n_audio_tokens for p in runs[4, True]] == [p.n_audio_tokens for p in runs[1, False]]
