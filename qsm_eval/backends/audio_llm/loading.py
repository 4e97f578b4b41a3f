"""Loading an audio LLM: checkpoint location, family check, device, dtype, quantisation, weights.

The checkpoint's config.json ``model_type`` is checked against the profile before anything
is built (a Whisper or text-only Qwen2 directory would otherwise load through the family's
config class with a warning and build a random model of full size); weights the model lacks
or does not know are refused after loading; a local directory never takes a revision, and its
weights are fingerprinted for the prediction cache.

Weights are never downloaded at run time: a hub id is looked up in the local Hugging Face
cache only (HF_HOME / HF_HUB_CACHE, read when the model loads), and a missing checkpoint
ends in one BackendError that gives the command that fetches it. Only the transformers
classes are used, never code shipped inside a checkpoint (trust_remote_code stays False).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qsm_eval.backends import hf_loading
from qsm_eval.backends.base import BackendError
# The checkpoint, device and dtype rules every transformers backend shares live in hf_loading.
from qsm_eval.backends.hf_loading import OFFLINE as _OFFLINE
from qsm_eval.backends.hf_loading import first_line as _first_line
from qsm_eval.backends.hf_loading import resolve_device, resolve_dtype

DEFAULT_MODEL = "Qwen/Qwen2-Audio-7B-Instruct"
# Where a checkpoint may keep its chat template (processor, tokenizer, or a file of its own).
_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
_TEMPLATE_CONFIGS = ("processor_config.json", "tokenizer_config.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
LOAD_IN = ("none", "8bit", "4bit")


@dataclass
class LoadedModel:
    """What the backend serves from: the model, its processor, and where they run."""

    model: Any
    processor: Any
    device: Any          # torch.device the inputs go to
    dtype: Any           # torch dtype of the weights
    source: str          # the directory or hub id the weights came from
    revision: str | None
    load_in: str
    profile: Any = None              # the Profile served
    model_type: str | None = None    # config.json model_type
    chat_template_source: str = "none"   # checkpoint, profile default, or none (raw prompt)
    weights_sha256: str | None = None    # fingerprint of a local directory's weight files


def locate_checkpoint(model_path: str | None, revision: str | None, default: str = DEFAULT_MODEL,
                      family: str = "an audio-LLM checkpoint") -> str:
    """The directory to load from: a local directory as given, or the cached snapshot of a hub id.

    A local directory has no revisions: a --qsm-revision with one is refused, not ignored.
    """
    local = Path(model_path or default).expanduser()
    if revision and local.is_dir():
        raise BackendError(f"--qsm-revision {revision} was given with the local directory {local}: "
                           f"a directory has no revisions; drop --qsm-revision, or pass a hub id")
    return hf_loading.locate_checkpoint(model_path, revision, default_model=default, family=family)


def checkpoint_model_type(directory: str) -> str | None:
    """config.json's model_type, read as plain JSON (nothing is built)."""
    config = hf_loading.read_config(directory)
    return config.get("model_type") if isinstance(config, dict) else None


def check_family(directory: str, profile, model_type: str | None) -> None:
    """Refuse a checkpoint of another family before any weight loads."""
    if model_type not in profile.model_types:
        raise BackendError(
            f"{directory} is not a {profile.family} checkpoint: its config.json has model_type "
            f"{model_type!r}, profile {profile.name} expects {' or '.join(map(repr, profile.model_types))}; "
            f"point --qsm-model-path at a {profile.family} checkpoint or pick the matching backend/profile")


def check_needs(profile) -> None:
    """Refuse, in one line, a family whose processor needs a package that does not import."""
    for module in profile.needs:
        try:
            importlib.import_module(module)
        except Exception as exc:   # ImportError, or a build that does not fit the torch installed
            raise BackendError(
                f"profile {profile.name} needs {module}, which does not import here ({_first_line(exc)}): "
                f"pip install 'qsm-eval[{profile.extra}]' (a {module} built for the torch installed)") from None


def has_own_chat_template(directory: str) -> bool:
    """Whether the checkpoint itself carries a chat template (not one a processor class supplies)."""
    root = Path(directory)
    if any((root / name).is_file() for name in _TEMPLATE_FILES):
        return True
    for name in _TEMPLATE_CONFIGS:
        try:
            data = json.loads((root / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("chat_template"):
            return True
    return False


def weight_files(directory: str) -> list[Path]:
    return sorted(p for p in Path(directory).iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)


def weights_fingerprint(directory: str) -> str:
    """sha256 over each weight file's name, size, and its first and last MiB.

    Reading 16 GB of weights at every start would cost a minute; changed weights (a new
    fine-tune saved over the old, a re-download) change a size or the bytes at either end,
    where safetensors keeps its header.
    """
    digest = hashlib.sha256()
    for path in weight_files(directory):
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\0".encode())
        with open(path, "rb") as fh:
            digest.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                digest.update(fh.read())
    return digest.hexdigest()


def quantization_config(load_in: str, device):
    """A BitsAndBytesConfig for 8-bit/4-bit loading, or None; refused where it cannot work."""
    load_in = (load_in or "none").lower()
    if load_in not in LOAD_IN:
        raise BackendError(f"--qsm-load-in {load_in!r} is not one of {', '.join(LOAD_IN)}")
    if load_in == "none":
        return None
    if device.type != "cuda":
        raise BackendError(f"--qsm-load-in {load_in} needs a CUDA GPU (bitsandbytes); "
                           f"this run is on {device}; use --qsm-load-in none")
    try:
        import bitsandbytes  # noqa: F401  (only checks that the extra is installed)
    except ImportError as exc:
        raise BackendError(f"--qsm-load-in {load_in} needs bitsandbytes: "
                           f"pip install 'qsm-eval[quant]'") from exc
    import torch
    from transformers import BitsAndBytesConfig

    if load_in == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16,
                              bnb_4bit_quant_type="nf4")


def load(settings: dict, profile=None) -> LoadedModel:
    """Model and processor from the settings (model_path, revision, device, dtype, options).

    ``profile`` None: the profile is read off the checkpoint (config.json model_type, and for
    Qwen2-Audio whether it has a chat template).
    """
    import transformers

    from qsm_eval.backends.audio_llm.profiles import QWEN2_AUDIO, detect_profile

    revision = settings.get("revision") or None
    device = resolve_device(settings.get("device"), settings.get("worker_index"))
    dtype = resolve_dtype(settings.get("dtype"), device)
    load_in = (settings.get("load_in") or "none").lower()
    quant = quantization_config(load_in, device)
    device_map = settings.get("device_map") or None
    directory = locate_checkpoint(settings.get("model_path"), revision,
                                  default=(profile or QWEN2_AUDIO).default_model,
                                  family=f"a {(profile or QWEN2_AUDIO).family} checkpoint")
    model_type = checkpoint_model_type(directory)
    own_template = has_own_chat_template(directory)
    if profile is None:
        profile = detect_profile(model_type, own_template)
        if profile is None:
            from qsm_eval.backends.audio_llm.profiles import PROFILES
            known = ", ".join(f"{p.name} ({'/'.join(p.model_types)})" for p in PROFILES.values())
            raise BackendError(f"{directory}: config.json model_type {model_type!r} is no audio LLM this "
                               f"backend serves; known profiles: {known}")
    check_family(directory, profile, model_type)
    check_needs(profile)
    if not weight_files(directory):
        raise BackendError(f"{directory} holds no weight files (*.safetensors, *.bin): the model would "
                           f"answer from random weights; point --qsm-model-path at a complete checkpoint")
    local = Path(settings.get("model_path") or "").expanduser().is_dir()

    kwargs: dict[str, Any] = {"dtype": dtype, **_OFFLINE}
    if quant is not None:
        kwargs["quantization_config"] = quant
        device_map = device_map or {"": device.index or 0}
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        processor = getattr(transformers, profile.processor_class).from_pretrained(directory, **_OFFLINE)
        model, info = getattr(transformers, profile.model_class).from_pretrained(
            directory, output_loading_info=True, **_part_of_checkpoint(directory, profile), **kwargs)
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot load {profile.family} from {directory}: {_first_line(exc)}") from exc
    _check_loaded_weights(directory, info, unused=profile.unused_weights)
    if device_map is None:
        model = model.to(device)
    else:
        # With a device map the inputs go where the embeddings live.
        device = model.get_input_embeddings().weight.device
    # Batched prompts are left-padded so that every row's next token sits at the last position.
    processor.tokenizer.padding_side = "left"
    if profile.prompt_format == "raw":
        template_source = "none"
    elif profile.prompt_format == "mistral":
        template_source = "mistral-common (tekken.json)"
    elif own_template:
        template_source = "checkpoint"
    elif getattr(processor, "chat_template", None):
        template_source = "profile default"   # e.g. the template transformers ships for Qwen2-Audio
    else:
        raise BackendError(f"{directory} has no chat template and profile {profile.name} has no default "
                           f"one; use a checkpoint that ships its chat template")
    return LoadedModel(model=model.eval(), processor=processor, device=device, dtype=dtype,
                       source=directory, revision=revision, load_in=load_in, profile=profile,
                       model_type=model_type, chat_template_source=template_source,
                       weights_sha256=weights_fingerprint(directory) if local else None)


def _part_of_checkpoint(directory: str, profile) -> dict[str, Any]:
    """from_pretrained keywords that load only the answering part of a larger checkpoint:
    its own config (a sub-config of config.json) and its weights with their prefix removed."""
    if not profile.config_part:
        return {}
    import transformers

    whole = transformers.AutoConfig.from_pretrained(directory, **_OFFLINE)
    part = getattr(whole, profile.config_part, None)
    if part is None:
        raise BackendError(f"{directory}: config.json has no {profile.config_part}, which every "
                           f"{profile.family} checkpoint has; the checkpoint is incomplete")
    return {"config": part, "key_mapping": {f"^{re.escape(profile.weights_prefix)}": ""}}


def _check_loaded_weights(directory: str, info: dict, unused: tuple[str, ...] = ()) -> None:
    """Refuse weights the model lacks (it would answer from random ones) or does not know.

    ``unused``: prefixes of checkpoint parts the profile leaves unbuilt on purpose (their
    weights are unexpected by design, not a sign of another model)."""
    problems = []
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        keys = sorted(str(k) for k in info.get(kind) or ()
                      if not (kind == "unexpected_keys" and str(k).startswith(unused)))
        if keys:
            shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            problems.append(f"{len(keys)} {kind.replace('_', ' ')} ({shown})")
    if problems:
        raise BackendError(f"the weights in {directory} do not fit the model: {'; '.join(problems)}; "
                           f"the checkpoint is incomplete or of another model")

