"""Loading Hugging Face checkpoints for every transformers backend: cache-only, no remote code.

What all of them share: where a checkpoint is (a local directory as given, or a hub id looked
up in the local cache only: HF_HOME / HF_HUB_CACHE, read at load time), which model family
it is (config.json's ``model_type``, read before any weights so that a wrong checkpoint is
refused in one line that names what was expected and what was found), and which device and
dtype it runs on. A missing checkpoint ends in one BackendError that gives the command that
fetches it. Only transformers' own classes are used: ``trust_remote_code`` is always False.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from qsm_eval.backends.base import BackendError

DTYPES = ("auto", "bfloat16", "float16", "float32")
DEVICES = ("auto", "cuda", "cpu")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Every from_pretrained: only local files, and never code shipped with a checkpoint.
OFFLINE = {"trust_remote_code": False, "local_files_only": True}


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
            f"on this machine; use --qsm-device cpu or auto")
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


def cpu_threads(device) -> int:
    """CPU cores a torch model on ``device`` keeps busy: torch's intra-op threads on the CPU,
    none on an accelerator."""
    import torch

    return torch.get_num_threads() if device.type == "cpu" else 0


def locate_checkpoint(model_path: str | None, revision: str | None, *, default_model: str,
                      family: str) -> str:
    """The directory to load from: a local directory as given, or the cached snapshot of a hub id.

    ``family`` names the kind of checkpoint the backend wants, for the messages
    (e.g. "a Whisper checkpoint").
    """
    model_path = model_path or default_model
    local = Path(model_path).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise BackendError(f"model directory {local} has no config.json; point --qsm-model-path "
                               f"at {family} saved with save_pretrained")
        return str(local)
    if not _HUB_ID.match(model_path):
        raise BackendError(f"model directory {model_path} does not exist; pass an existing directory "
                           f"or a hub id such as {default_model}")
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


def read_config(directory: str) -> dict:
    """config.json of a located checkpoint, as a dict (no transformers class, no weights)."""
    path = Path(directory) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendError(f"{path} cannot be read as JSON ({first_line(exc)}); "
                           f"re-save the checkpoint with save_pretrained") from exc


def require_model_type(directory: str, expected: tuple[str, ...], backend: str) -> dict:
    """config.json, after checking its model_type is one ``backend`` serves; else one line.

    Runs before any weights load, so a wrong checkpoint costs milliseconds, not a 7B load.
    """
    config = read_config(directory)
    found = config.get("model_type")
    if found not in expected:
        raise BackendError(
            f"{backend}: {directory} is a {found!r} checkpoint (config.json model_type), but this "
            f"backend expects model_type {' or '.join(repr(e) for e in expected)}; pass a matching "
            f"checkpoint with --qsm-model-path or pick the backend for this model with --qsm-model")
    return config


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")
