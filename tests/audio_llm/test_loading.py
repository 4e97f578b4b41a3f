"""Loading: local directories, the offline hub cache, revisions, devices, and no remote code."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from qsm_eval.backends import create_backend
from qsm_eval.backends.base import BackendError
from qsm_eval.backends.audio_llm import AudioLlmBackend, Qwen2AudioBackend
from qsm_eval.backends.audio_llm.loading import resolve_device, resolve_dtype

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_hub_cache(hf_home, checkpoint, repo="qsm-test/tiny-qwen2-audio", ref="v1"):
    """An HF_HOME whose hub cache holds ``checkpoint`` as one snapshot reachable by ``ref`` only."""
    repo_dir = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    shutil.copytree(checkpoint, repo_dir / "snapshots" / COMMIT)
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / ref).write_text(COMMIT)
    return repo


def test_loads_through_the_registry_from_a_local_directory(tiny_checkpoint):
    backend = create_backend("qwen2-audio", {"model_path": str(tiny_checkpoint), "device": "cpu",
                                             "dtype": "auto"})
    assert isinstance(backend, Qwen2AudioBackend)
    described = backend.describe()
    assert described["source"] == str(tiny_checkpoint) and described["dtype"] == "float32"
    assert described["device"] == "cpu" and described["scoring"] == "logits"
    assert backend.loaded.processor.tokenizer.padding_side == "left"


def test_describe_still_answers_after_close(make_backend):
    backend = make_backend()
    before = backend.describe()
    backend.close()
    assert backend.loaded is None and backend.describe() == before


def test_dtype_is_applied(make_backend):
    backend = make_backend(dtype="bfloat16")
    assert next(backend.loaded.model.parameters()).dtype == torch.bfloat16
    assert backend.describe()["dtype"] == "bfloat16"


def test_missing_local_directory_is_one_clear_line(tmp_path):
    missing = tmp_path / "no" / "such" / "model"
    with pytest.raises(BackendError, match=f"model directory {missing} does not exist"):
        Qwen2AudioBackend(model_path=str(missing), device="cpu")


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(BackendError, match="has no config.json"):
        Qwen2AudioBackend(model_path=str(tmp_path), device="cpu")


def test_hub_id_missing_from_the_cache_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with pytest.raises(BackendError) as info:
        Qwen2AudioBackend(device="cpu")  # model_path None: the default model
    message = str(info.value)
    assert "huggingface-cli download Qwen/Qwen2-Audio-7B-Instruct" in message
    assert "hf download Qwen/Qwen2-Audio-7B-Instruct" in message   # the CLI's newer name
    assert f"HF_HOME={tmp_path / 'hf'}" in message and "\n" not in message


def test_hub_id_is_served_from_the_cache_at_the_requested_revision(tmp_path, monkeypatch, tiny_checkpoint):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    repo = fake_hub_cache(tmp_path / "hf", tiny_checkpoint)
    backend = Qwen2AudioBackend(model_path=repo, revision="v1", device="cpu")
    assert backend.describe()["source"].endswith(f"snapshots/{COMMIT}")
    assert backend.describe()["revision"] == "v1"
    # Without the revision the cache has no "main" ref: the revision is what found the weights.
    with pytest.raises(BackendError, match=f"huggingface-cli download {repo}"):
        Qwen2AudioBackend(model_path=repo, device="cpu")
    with pytest.raises(BackendError, match="--revision v2"):
        Qwen2AudioBackend(model_path=repo, revision="v2", device="cpu")


def test_code_shipped_in_a_checkpoint_is_never_run(tmp_path, tiny_checkpoint, make_remote_code_checkpoint):
    checkpoint, marker = make_remote_code_checkpoint(
        tiny_checkpoint, tmp_path,
        {"Model": "Qwen2AudioForConditionalGeneration", "Processor": "Qwen2AudioProcessor"},
        {"config.json": ("AutoModelForCausalLM", "evil.Model"),
         "processor_config.json": ("AutoProcessor", "evil.Processor"),
         "tokenizer_config.json": ("AutoTokenizer", ["evil.Processor", None])})
    backend = Qwen2AudioBackend(model_path=str(checkpoint), device="cpu")
    assert type(backend.loaded.model).__module__.startswith("transformers.")
    assert not marker.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_requested_without_cuda_is_one_clear_line(tiny_checkpoint):
    with pytest.raises(BackendError, match="--qsm-device cuda was requested but .* sees no CUDA GPU"):
        Qwen2AudioBackend(model_path=str(tiny_checkpoint), device="cuda")


def test_quantised_loading_is_refused_where_it_cannot_work(tiny_checkpoint):
    with pytest.raises(BackendError, match="--qsm-load-in 8bit needs a CUDA GPU"):
        Qwen2AudioBackend(model_path=str(tiny_checkpoint), device="cpu", load_in="8bit")


def test_device_and_dtype_resolution():
    cpu = resolve_device("cpu")
    assert resolve_device("cpu", worker_index=3) == cpu   # xdist workers share the CPU
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("float16", cpu) == torch.float16
    with pytest.raises(BackendError, match="--qsm-dtype 'half'"):
        resolve_dtype("half", cpu)
    with pytest.raises(BackendError, match="--qsm-device 'tpu'"):
        resolve_device("tpu")


def test_device_map_is_passed_to_transformers(make_backend, mixed_requests):
    backend = make_backend(device_map="cpu")
    assert backend.describe()["device_map"] == "cpu"
    assert backend.loaded.device.type == "cpu"
    assert backend.predict_batch(mixed_requests[:2])[0].p_speech is not None
    # A map transformers cannot use comes back as one line naming the checkpoint.
    with pytest.raises(BackendError, match="cannot load Qwen2-Audio Instruct from .*no-such-strategy"):
        make_backend(device_map="no-such-strategy")


def test_cache_fingerprint_names_the_device_type_not_which_gpu(make_backend):
    import dataclasses

    backend = make_backend()
    on = {index: Qwen2AudioBackend(**backend.settings, loaded=dataclasses.replace(
        backend.loaded, device=torch.device("cuda", index))) for index in (0, 1)}
    assert on[0].describe()["device"] == "cuda:0" and on[1].describe()["device"] == "cuda:1"
    assert on[0].fingerprint() == on[1].fingerprint() != backend.fingerprint()


# -- checkpoints that must not load (issue 9, point 14) ------------------------------------

@pytest.mark.parametrize("config", [
    {"model_type": "whisper", "d_model": 1280, "encoder_layers": 32, "decoder_layers": 32},
    {"model_type": "qwen2", "hidden_size": 4096, "num_hidden_layers": 32, "vocab_size": 151936},
], ids=["whisper", "text-only-qwen2"])
def test_checkpoint_of_another_model_type_is_refused_before_building(tmp_path, config):
    # Only config.json: a build would have to make up random weights of full size; the
    # refusal names what was expected and what was found, before any weight is looked at.
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(BackendError) as info:
        Qwen2AudioBackend(model_path=str(tmp_path), device="cpu")
    message = str(info.value)
    assert f"model_type {config['model_type']!r}" in message and "expects 'qwen2_audio'" in message
    with pytest.raises(BackendError, match=f"model_type {config['model_type']!r} is no audio LLM"):
        AudioLlmBackend(model_path=str(tmp_path), device="cpu")


def _rewrite_weights(checkpoint, target, change):
    from safetensors.torch import load_file, save_file

    shutil.copytree(checkpoint, target)
    tensors = load_file(target / "model.safetensors")
    save_file(change(tensors), target / "model.safetensors", metadata={"format": "pt"})
    return target


def test_checkpoint_missing_its_language_model_weights_is_refused(tmp_path, tiny_checkpoint):
    broken = _rewrite_weights(tiny_checkpoint, tmp_path / "no-lm", lambda t: {
        k: v for k, v in t.items() if "language_model" not in k})
    with pytest.raises(BackendError, match=r"do not fit the model: \d+ missing keys \(.*language_model"):
        Qwen2AudioBackend(model_path=str(broken), device="cpu")
    empty = tmp_path / "no-weights"
    shutil.copytree(tiny_checkpoint, empty)
    (empty / "model.safetensors").unlink()
    with pytest.raises(BackendError, match="holds no weight files"):
        Qwen2AudioBackend(model_path=str(empty), device="cpu")


def test_checkpoint_with_unexpected_weights_is_refused(tmp_path, tiny_checkpoint):
    broken = _rewrite_weights(tiny_checkpoint, tmp_path / "extra", lambda t: {
        **t, "model.extra_head.weight": torch.zeros(2, 2)})
    with pytest.raises(BackendError, match=r"1 unexpected keys \(model.extra_head.weight\)"):
        Qwen2AudioBackend(model_path=str(broken), device="cpu")


def test_revision_with_a_local_directory_is_refused(tiny_checkpoint):
    with pytest.raises(BackendError, match="--qsm-revision v1 was given with the local directory"):
        Qwen2AudioBackend(model_path=str(tiny_checkpoint), revision="v1", device="cpu")


def test_cache_key_of_a_local_directory_fingerprints_its_weights(tmp_path, tiny_checkpoint):
    copy = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, copy)
    before = Qwen2AudioBackend(model_path=str(copy), device="cpu")
    assert before.describe()["weights_sha256"] == Qwen2AudioBackend(model_path=str(copy), device="cpu").describe()["weights_sha256"]
    # The same path, other weights (a fine-tune saved over the old one).
    _rewrite_weights(tiny_checkpoint, tmp_path / "retrained", lambda t: {k: v * 1.01 for k, v in t.items()})
    shutil.copy(tmp_path / "retrained" / "model.safetensors", copy / "model.safetensors")
    after = Qwen2AudioBackend(model_path=str(copy), device="cpu")
    assert len(after.describe()["weights_sha256"]) == 64
    assert after.describe()["weights_sha256"] != before.describe()["weights_sha256"]
    assert after.fingerprint() != before.fingerprint()
