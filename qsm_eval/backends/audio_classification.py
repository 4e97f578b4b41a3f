"""AudioSet classifiers as speech detectors (``--qsm-model audio-classification``).

The Audio Spectrogram Transformer fine-tuned on AudioSet (default
``MIT/ast-finetuned-audioset-10-10-0.4593``) scores 527 AudioSet classes for a clip. AudioSet
is multi-label (a clip is Speech and Music and Vehicle at once) and its heads are trained with
a per-class binary loss, so each class's probability is the sigmoid of its logit, never a
softmax across classes. p_speech is the sigmoid of ``Speech``.

- A label set (``--qsm-classifier-labels "Speech|Conversation"``, or ``speech-subtree`` for the
  Speech node of the AudioSet ontology with its seven children) is combined by ``max`` by
  default: the probability that at least one of several events is present is at least the
  largest of their probabilities, whatever their dependence, and the ontology's children are
  kinds of Speech, so strongly dependent on it; ``noisy-or`` (1 - prod(1 - p)) is exact only
  for independent labels and counts the same evidence several times when they are not. A sum
  of probabilities can exceed 1 and is not offered.
- The decision: SPEECH when p_speech >= ``--qsm-classifier-threshold`` (0.5: the point where
  a per-class binary classifier's probability favours presence).
- What the model is shown: AST's feature extractor cuts Kaldi filterbank frames of 25 ms every
  10 ms without padding the edges (``snip_edges``), so a clip of n samples gives
  ``1 + (n - 400) // 160`` frames, and none at all under 25 ms: such a clip would reach the
  model as nothing but padding and is an error (present it in a container with --qsm-pad-ms).
  Every clip is then zero-padded to ``max_length`` frames (1024, 10.24 s), recorded in ``padding``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from qsm_eval.audio import SAMPLE_RATE
from qsm_eval.backends.base import BackendError, Option
from qsm_eval.backends.hf_audio import PresentedRow, Scores, TransformersAudioBackend
from qsm_eval.backends.presentation import PRESENTATION_OPTIONS
from qsm_eval.options import is_probability

DEFAULT_MODEL = "MIT/ast-finetuned-audioset-10-10-0.4593"
# AudioSet ontology (/m/09x0r, "Speech"): the node and its children, named as in AST's id2label.
SPEECH_SUBTREE = (
    "Speech", "Male speech, man speaking", "Female speech, woman speaking",
    "Child speech, kid speaking", "Conversation", "Narration, monologue", "Babbling",
    "Speech synthesizer",
)
COMBINATIONS = ("max", "noisy-or")
# torchaudio.compliance.kaldi.fbank's defaults, which AST's feature extractor uses (its numpy
# fallback hard-codes the same 400/160 samples at 16 kHz).
KALDI_FRAME_LENGTH_MS = 25.0
KALDI_FRAME_SHIFT_MS = 10.0

LABELS = Option(
    "classifier_labels", str, "Speech",
    "audio-classification: the label(s) whose sigmoid is p_speech, separated by |, or "
    "speech-subtree (Speech and its AudioSet children); default Speech")
COMBINE = Option(
    "classifier_combine", str, "max",
    "audio-classification: how several labels' sigmoids combine: max (default) or noisy-or",
    choices=COMBINATIONS)
THRESHOLD = Option(
    "classifier_threshold", float, 0.5,
    "audio-classification: SPEECH when p_speech >= this; default 0.5",
    check=is_probability, allowed="a probability from 0 to 1")


def parse_labels(text: str) -> tuple[str, ...]:
    if text.strip() == "speech-subtree":
        return SPEECH_SUBTREE
    labels = tuple(part.strip() for part in text.split("|") if part.strip())
    if not labels:
        raise BackendError(f"{LABELS.flag} {text!r} names no label; e.g. Speech or speech-subtree")
    return labels


def kaldi_frames(n_samples: int, sampling_rate: int = SAMPLE_RATE) -> int:
    """Frames of a Kaldi filterbank with snip_edges: whole 25 ms windows every 10 ms."""
    length = int(sampling_rate * KALDI_FRAME_LENGTH_MS / 1000)
    shift = int(sampling_rate * KALDI_FRAME_SHIFT_MS / 1000)
    return 0 if n_samples < length else 1 + (n_samples - length) // shift


def combine(probabilities: np.ndarray, how: str) -> np.ndarray:
    """(clips, labels) sigmoids -> (clips,) p_speech."""
    if how == "max":
        return probabilities.max(axis=1)
    return 1.0 - np.prod(1.0 - probabilities, axis=1)


class AudioClassificationBackend(TransformersAudioBackend):
    name = "audio-classification"
    default_model = DEFAULT_MODEL
    model_types = ("audio-spectrogram-transformer",)
    family = "an AST AudioSet classifier checkpoint"
    input_unit = "filterbank frames"
    options = (LABELS, COMBINE, THRESHOLD, *PRESENTATION_OPTIONS)

    def __init__(self, *, model_path: str | None = None, revision: str | None = None,
                 device: str = "auto", dtype: str = "auto", batch_size: int | None = None,
                 classifier_labels: str = "Speech", classifier_combine: str = "max",
                 classifier_threshold: float = 0.5, pad_ms: int = 0, pad_placement: str = "center",
                 pad_fill: str = "silence", pad_level_db: float = -60.0, worker_index: int | None = None):
        from transformers import ASTFeatureExtractor, ASTForAudioClassification

        self.labels = parse_labels(classifier_labels)
        self.combination = classifier_combine
        self.decision_threshold = float(classifier_threshold)
        config = self._locate(model_path=model_path, revision=revision, device=device, dtype=dtype,
                              worker_index=worker_index, batch_size=batch_size, pad_ms=pad_ms,
                              pad_placement=pad_placement, pad_fill=pad_fill, pad_level_db=pad_level_db)
        self.label_ids = self._label_ids(config)
        with warnings.catch_warnings():
            # Without torchaudio, transformers builds AST's 128-band Kaldi filterbank in numpy and
            # warns that some band is empty at a 512-point FFT: true of the checkpoint's own
            # settings, and nothing this run can change.
            warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
            self.features = self._from_pretrained(ASTFeatureExtractor)
        self.model = self._load_model(ASTForAudioClassification)

    def _label_ids(self, config: dict) -> list[int]:
        """The head's indices of the requested labels, from config.json (before any weights)."""
        if config.get("problem_type") == "single_label_classification":
            raise BackendError(f"{self.name}: {self.source} is a single-label classifier (config.json "
                               f"problem_type); p_speech needs a multi-label AudioSet head")
        by_name = {name: int(index) for index, name in (config.get("id2label") or {}).items()}
        missing = [label for label in self.labels if label not in by_name]
        if missing:
            some = ", ".join(repr(n) for n in list(by_name)[:5])
            raise BackendError(
                f"{self.name}: {self.source} has no label {', '.join(repr(m) for m in missing)} in "
                f"config.json's id2label (it has {len(by_name)} labels, e.g. {some}); expected an "
                f"AudioSet head, or name its labels with {LABELS.flag}")
        return [by_name[label] for label in self.labels]

    def effective_input(self, n_samples: int) -> int:
        return min(kaldi_frames(n_samples, self.features.sampling_rate), self.features.max_length)

    def max_samples(self) -> int:
        # The last sample inside the max_length-th frame; later ones would be cut off.
        length = int(self.features.sampling_rate * KALDI_FRAME_LENGTH_MS / 1000)
        shift = int(self.features.sampling_rate * KALDI_FRAME_SHIFT_MS / 1000)
        return length + (self.features.max_length - 1) * shift + shift - 1

    def least_input(self) -> str:
        return f"{KALDI_FRAME_LENGTH_MS:g} ms, one {KALDI_FRAME_LENGTH_MS:g} ms window every {KALDI_FRAME_SHIFT_MS:g} ms"

    def model_padding(self) -> str:
        return f"model zero-pads to {self.features.max_length} frames"

    def model_label(self) -> str:
        return "AST"

    def threshold(self) -> float:
        return self.decision_threshold

    def prepare_rows(self, rows: list[PresentedRow]):
        """The filter-bank features (computed on the CPU), ahead of the model."""
        return self.features([row.waveform for row in rows], sampling_rate=SAMPLE_RATE,
                             return_tensors="pt").input_values

    def label_probabilities(self, input_values) -> np.ndarray:
        """(clips, labels): the sigmoid of each requested label's logit."""
        import torch

        with torch.inference_mode():
            logits = self.model(input_values=input_values.to(self.device, self.dtype)).logits
        return torch.sigmoid(logits[:, self.label_ids].float()).cpu().numpy()

    def score(self, rows: list[PresentedRow], prepared=None) -> Scores:
        probabilities = self.label_probabilities(prepared if prepared is not None else self.prepare_rows(rows))
        p_speech = combine(probabilities, self.combination)
        raw = [" ".join(f"{label}={p:.4f}" for label, p in zip(self.labels, row)) for row in probabilities]
        return Scores(p_speech=[float(p) for p in p_speech], raw_output=raw)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "classifier_labels": list(self.labels),
                "classifier_label_ids": self.label_ids, "classifier_combine": self.combination,
                "p_speech": f"{self.combination} of sigmoid(logit) over the labels"}
