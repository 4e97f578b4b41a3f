"""Loading Qwen2-Audio: checkpoint location, device, dtype, quantisation; errors as one line.

Weights are never downloaded at run time: a hub id is looked up in the local Hugging Face
cache only (HF_HOME / HF_HUB_CACHE, read when the model loads), and a missing checkpoint
ends in one BackendError that gives the command that fetches it. Only the transformers
classes are used, never code shipped inside a checkpoint (trust_remote_code stays False).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qsm_eval.backends.base import BackendError

DEFAULT_MODEL = "Qwen/Qwen2-Audio-7B-Instruct"
DTYPES = ("auto", "bfloat16", "float16", "float32")
DEVICES = ("auto", "cuda", "cpu")
LOAD_IN = ("none", "8bit", "4bit")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Every from_pretrained: only local files, and never code shipped with a checkpoint.
_OFFLINE = {"trust_remote_code": False, "local_files_only": True}


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


def hub_cache_dir() -> Path:
    """The hub cache as the environment says now (HF_HUB_CACHE, else HF_HOME/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants
    return Path(constants.HF_HUB_CACHE)


def hf_home() -> str:
    if os.environ.get("HF_HOME"):
        return os.environ["HF_HOME"]
    from huggingface_hub import constants
    return constants.HF_HOME


def resolve_device(requested: str | None, worker_index: int | None = None):
    """auto -> cuda when torch sees a GPU, else cpu; cuda without a GPU is refused clearly.

    Under pytest-xdist (``worker_index`` set) a plain auto/cuda puts worker N on GPU N modulo
    the GPU count: one model replica per GPU.
    """
    import torch

    requested = (requested or "auto").lower()
    if requested not in DEVICES and not requested.startswith("cuda:"):
        raise BackendError(f"--qsm-device {requested!r} is not one of {', '.join(DEVICES)} (or cuda:N)")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(
            f"--qsm-device {requested} was requested but torch {torch.__version__} sees no CUDA GPU "
            f"on this machine; use --qsm-device cpu (slow for a 7B model) or auto")
    if requested == "cuda" and worker_index is not None:
        return torch.device("cuda", worker_index % torch.cuda.device_count())
    return torch.device(requested)


def resolve_dtype(requested: str | None, device):
    """auto -> bfloat16 on a GPU that supports it, float16 on an older GPU, float32 on the CPU."""
    import torch

    requested = (requested or "auto").lower()
    if requested not in DTYPES:
        raise BackendError(f"--qsm-dtype {requested!r} is not one of {', '.join(DTYPES)}")
    if requested != "auto":
        return getattr(torch, requested)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def locate_checkpoint(model_path: str | None, revision: str | None) -> str:
    """The directory to load from: a local directory as given, or the cached snapshot of a hub id."""
    model_path = model_path or DEFAULT_MODEL
    local = Path(model_path).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise BackendError(f"model directory {local} has no config.json; point --qsm-model-path "
                               f"at a Qwen2-Audio checkpoint saved with save_pretrained")
        return str(local)
    if not _HUB_ID.match(model_path):
        raise BackendError(f"model directory {model_path} does not exist; pass an existing directory "
                           f"or a hub id such as {DEFAULT_MODEL}")
    return _cached_snapshot(model_path, revision)


def _cached_snapshot(model_id: str, revision: str | None) -> str:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hub_cache_dir()
    try:
        return snapshot_download(model_id, revision=revision, cache_dir=cache, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError) as exc:
        args = f"download {model_id}" + (f" --revision {revision}" if revision else "")
        raise BackendError(
            f"weights for {model_id}{'@' + revision if revision else ''} are not on this machine "
            f"(looked in {cache}; HF_HOME={hf_home()}); qsm-eval never downloads at run time: "
            f"fetch them first with `hf {args}` (huggingface_hub 1.0 and later installs only `hf`; "
            f"older ones: `huggingface-cli {args}`; set HF_HOME to choose where they go), "
            f"or pass a local directory with --qsm-model-path") from exc


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
