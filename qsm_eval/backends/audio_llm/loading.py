"""Loading Qwen2-Audio: checkpoint location, device, dtype, quantisation; errors as one line.

Weights are never downloaded at run time: a hub id is looked up in the local Hugging Face
cache only (HF_HOME / HF_HUB_CACHE, read when the model loads), and a missing checkpoint
ends in one BackendError that gives the command that fetches it. Only the transformers
classes are used, never code shipped inside a checkpoint (trust_remote_code stays False).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qsm_eval.backends import hf_loading
from qsm_eval.backends.base import BackendError
# The checkpoint, device and dtype rules every transformers backend shares live in hf_loading.
from qsm_eval.backends.hf_loading import OFFLINE as _OFFLINE
from qsm_eval.backends.hf_loading import first_line as _first_line
from qsm_eval.backends.hf_loading import resolve_device, resolve_dtype

DEFAULT_MODEL = "Qwen/Qwen2-Audio-7B-Instruct"
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


def locate_checkpoint(model_path: str | None, revision: str | None) -> str:
    """The directory to load from: a local directory as given, or the cached snapshot of a hub id."""
    return hf_loading.locate_checkpoint(model_path, revision, default_model=DEFAULT_MODEL,
                                        family="a Qwen2-Audio checkpoint")


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


def load(settings: dict) -> LoadedModel:
    """Model and processor from the settings (model_path, revision, device, dtype, options)."""
    from transformers import Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor

    revision = settings.get("revision") or None
    device = resolve_device(settings.get("device"), settings.get("worker_index"))
    dtype = resolve_dtype(settings.get("dtype"), device)
    load_in = (settings.get("load_in") or "none").lower()
    quant = quantization_config(load_in, device)
    device_map = settings.get("device_map") or None
    directory = locate_checkpoint(settings.get("model_path"), revision)

    kwargs: dict[str, Any] = {"dtype": dtype, **_OFFLINE}
    if quant is not None:
        kwargs["quantization_config"] = quant
        device_map = device_map or {"": device.index or 0}
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        processor = Qwen2AudioProcessor.from_pretrained(directory, **_OFFLINE)
        model = Qwen2AudioForConditionalGeneration.from_pretrained(directory, **kwargs)
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot load Qwen2-Audio from {directory}: {_first_line(exc)}") from exc
    if device_map is None:
        model = model.to(device)
    else:
        # With a device map the inputs go where the embeddings live.
        device = model.get_input_embeddings().weight.device
    # Batched prompts are left-padded so that every row's next token sits at the last position.
    processor.tokenizer.padding_side = "left"
    return LoadedModel(model=model.eval(), processor=processor, device=device, dtype=dtype,
                       source=directory, revision=revision, load_in=load_in)

