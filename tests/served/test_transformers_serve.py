"""Generate mode end to end against real `transformers serve` processes on the tiny checkpoint.

The served answers must be the local backend's answers, text for text: same prompt, same
samples (float WAV), same greedy decoding, same strict parser.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from qsm_eval.backends import BackendError, create_backend
from qsm_eval.backends.audio_llm import Qwen2AudioBackend

from .conftest import DEMO_SET, EVAL_SUITE


def served(servers, **settings):
    return create_backend("openai", {"endpoint": ",".join(s.url for s in servers), **settings})


def test_served_generate_answers_are_the_local_backends(transformers_servers, tiny_checkpoint, clips):
    local = Qwen2AudioBackend(model_path=str(tiny_checkpoint), device="cpu", dtype="float32",
                              scoring="generate", max_new_tokens=6)
    remote = served(transformers_servers, scoring="generate", max_new_tokens=6)
    try:
        expected, got = local.predict_batch(clips), remote.predict_batch(clips)
    finally:
        remote.close()
        local.close()
    assert [p.error for p in got] == [None] * len(clips)
    assert [p.raw_output for p in got] == [p.raw_output for p in expected]
    assert [(p.label, p.parse_status) for p in got] == [(p.label, p.parse_status) for p in expected]
    assert len({p.raw_output for p in got}) > 1      # the answers depend on the clip
    assert remote.identity().model == str(tiny_checkpoint)  # the one model the servers list


def test_logits_mode_against_a_server_without_logprobs_is_one_clear_error(transformers_servers):
    with pytest.raises(BackendError) as error:
        served(transformers_servers[:1], scoring="logits")
    message = str(error.value)
    assert "--qsm-scoring generate" in message and transformers_servers[0].url in message


def test_evals_over_two_servers_match_the_local_backend(pytester, transformers_servers, tiny_checkpoint):
    """The issue's done-when: `pytest evals --qsm-model openai --qsm-endpoint A --qsm-endpoint B
    --qsm-scoring generate` on demo cases; both servers answer; rows equal the local backend's."""
    pytester.makepyfile(test_speech_detection=EVAL_SUITE.read_text())
    common = ["-p", "no:cacheprovider", "--qsm-segments", str(DEMO_SET), "--qsm-scoring", "generate",
              "--qsm-max-new-tokens", "4", "--qsm-pad-ms", "100", "--qsm-summary", "none",
              "-k", "20ms or 1000ms", "--qsm-limit", "32"]
    before = [s.chat_requests() for s in transformers_servers]
    endpoints = [arg for s in transformers_servers for arg in ("--qsm-endpoint", s.url)]
    result = pytester.runpytest(*common, "--qsm-model", "openai", *endpoints,
                                "--qsm-out", str(pytester.path / "served"))
    assert result.ret == 0, result.stdout.str()
    answered = [s.chat_requests() - b for s, b in zip(transformers_servers, before)]
    result = pytester.runpytest(*common, "--qsm-model", "qwen2-audio", "--qsm-model-path", str(tiny_checkpoint),
                                "--qsm-device", "cpu", "--qsm-dtype", "float32",
                                "--qsm-out", str(pytester.path / "local"))
    assert result.ret == 0, result.stdout.str()
    columns = ["segment_id", "pred_label", "raw_output", "parse_status", "padding", "error"]
    served_rows = pd.read_parquet(pytester.path / "served" / "results.parquet")
    local_rows = pd.read_parquet(pytester.path / "local" / "results.parquet")
    assert len(served_rows) == 32 and served_rows["error"].isna().all()
    assert (served_rows["backend"] == "openai").all()
    pd.testing.assert_frame_equal(served_rows[columns].sort_values("segment_id").reset_index(drop=True),
                                  local_rows[columns].sort_values("segment_id").reset_index(drop=True))
    # Both servers did real work: the client's count per endpoint, and each server's own log
    # (at least as many: under xdist another worker may share the servers meanwhile).
    manifest = json.loads((pytester.path / "served" / "run.json").read_text())
    stats = manifest["backend"]["timings"]["endpoints"]
    ok = [stats[s.url]["ok"] for s in transformers_servers]
    assert sum(ok) == 32 and min(ok) >= 8, ok
    assert all(server_side >= client for server_side, client in zip(answered, ok)), (answered, ok)


def test_xdist_workers_are_thin_clients_and_the_cache_resumes_on_other_hosts(
        pytester, transformers_servers, tmp_path):
    """-n 2 over both servers; then the same cases against one server only (a run moved to
    other hosts): every answer comes from the shared cache, and no request is sent."""
    pytester.makepyfile(test_speech_detection=EVAL_SUITE.read_text())
    cache = tmp_path / "cache"
    common = ["-p", "no:cacheprovider", "--qsm-segments", str(DEMO_SET), "--qsm-model", "openai",
              "--qsm-scoring", "generate", "--qsm-max-new-tokens", "3", "--qsm-summary", "none",
              "-k", "500ms", "--qsm-cache", str(cache), "-n", "2"]
    before = [s.chat_requests() for s in transformers_servers]
    first = pytester.runpytest(*common, *(a for s in transformers_servers for a in ("--qsm-endpoint", s.url)),
                               "--qsm-out", str(tmp_path / "first"))
    assert first.ret == 0, first.stdout.str()
    answered = [s.chat_requests() - b for s, b in zip(transformers_servers, before)]
    workers = json.loads((tmp_path / "first" / "run.json").read_text())["backend"]["workers"]
    assert len(workers) == 2
    ok = [sum(w["timings"]["endpoints"][s.url]["ok"] for w in workers) for s in transformers_servers]
    assert sum(ok) == 48 and min(ok) > 0 and all(a >= o for a, o in zip(answered, ok)), (answered, ok)
    assert all(sum(e["ok"] for e in w["timings"]["endpoints"].values()) > 0 for w in workers)

    second = pytester.runpytest(*common, "--qsm-endpoint", transformers_servers[1].url,
                                "--qsm-out", str(tmp_path / "second"))
    assert second.ret == 0, second.stdout.str()
    workers = json.loads((tmp_path / "second" / "run.json").read_text())["backend"]["workers"]
    assert [w["timings"]["endpoints"][transformers_servers[1].url]["requests"] for w in workers] == [0, 0]
    one, two = (pd.read_parquet(tmp_path / run / "results.parquet").sort_values("segment_id")
                for run in ("first", "second"))
    assert len(one) == 48 and not one["cache_hit"].any() and two["cache_hit"].all()
    assert one["raw_output"].tolist() == two["raw_output"].tolist()
