"""A linear probe on a frozen speech encoder (``--qsm-model linear-probe``).

The encoder (wav2vec2, HuBERT, WavLM, data2vec-audio, or Whisper's encoder; default
``facebook/wav2vec2-base``) turns each clip into frame features at one layer; their mean over
the frames that hold the clip (never the encoder's own padding, e.g. Whisper's 30 s window) is
the clip's vector; a scikit-learn logistic regression on standardised vectors gives p_speech.

Where the probe's training data comes from, and why every answer is honest:

- The probe is fitted on labelled segment sets: ``--qsm-probe-train`` (directories), by
  default the sets being evaluated. Their metadata is read when the backend is built (so the
  cache fingerprint names the training data); their features are extracted once, before the
  first answer (``warmup`` or the first batch): the runner asks batch by batch, but a probe
  needs every training clip first.
- Cross-fitting (the default): the training rows are split into ``--qsm-probe-folds`` folds
  by source (GroupKFold on source_id; a clip without one is its own source), one probe is
  fitted per fold on the other folds, and a clip that is in the training data is answered by
  the probe of its own fold: a model that never saw its source. A clip is recognised by its
  audio (a hash of the samples the runner passes, which are the samples read for training),
  so no case can be answered by a probe trained on it, whatever the runner's keys are; a clip
  that is not itself in the training data but comes from a training recording (its
  request's source_id, e.g. a set built from the same sources) gets that recording's fold.
- ``--qsm-probe-train-split NAME``: the probe is fitted on the rows of that split only (still
  cross-fitted within it for those rows); every other clip is answered by the probe fitted
  on the whole split.
- Clips too short for the encoder (wav2vec2-family: under 25 ms, no convolution output) are
  errors to answer and are left out of training.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from qsm_eval.audio import SAMPLE_RATE
from qsm_eval.backends.base import AudioRequest, BackendError, Option
from qsm_eval.backends.hf_audio import PresentedRow, Scores, TransformersAudioBackend
from qsm_eval.backends.presentation import PRESENTATION_OPTIONS
from qsm_eval.options import at_least_one, is_probability
from qsm_eval.seeding import stable_seed

DEFAULT_MODEL = "facebook/wav2vec2-base"
WAVEFORM_ENCODERS = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")
ENCODERS = (*WAVEFORM_ENCODERS, "whisper")

TRAIN = Option("probe_train", str, None,
               "linear-probe: segment-set directories the probe is fitted on, separated by "
               f"{os.pathsep!r}; default: the sets being evaluated (cross-fitted by source)")
TRAIN_SPLIT = Option("probe_train_split", str, None,
                     "linear-probe: fit on this split's rows only (e.g. train); default: cross-fit "
                     "over every row")
FOLDS = Option("probe_folds", int, 5, "linear-probe: cross-fitting folds over sources; default 5",
               check=lambda n: n >= 2, allowed="an integer >= 2")
LAYER = Option("probe_layer", int, -1, "linear-probe: encoder layer whose features are pooled "
               "(0 = the input embeddings, -1 = the last); default -1")
C_OPTION = Option("probe_c", float, 1.0, "linear-probe: inverse L2 strength of the logistic "
                  "regression; default 1.0 (scikit-learn's)", check=lambda c: c > 0, allowed="a number > 0")
THRESHOLD = Option("probe_threshold", float, 0.5, "linear-probe: SPEECH when p_speech >= this; "
                   "default 0.5", check=is_probability, allowed="a probability from 0 to 1")


def audio_hash(waveform: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(waveform, dtype=np.float32).tobytes()).hexdigest()


@dataclass
class TrainingRow:
    key: str
    label: int               # 1 SPEECH, 0 NONSPEECH
    group: str               # the source: the cluster folds are cut along
    audio: str               # audio_hash of the samples
    request: AudioRequest


class LinearProbeBackend(TransformersAudioBackend):
    name = "linear-probe"
    default_model = DEFAULT_MODEL
    model_types = ENCODERS
    family = "a wav2vec2, HuBERT, WavLM, data2vec-audio or Whisper checkpoint"
    input_unit = "encoder frames"
    requires = ("transformers", "sklearn")
    options = (TRAIN, TRAIN_SPLIT, FOLDS, LAYER, C_OPTION, THRESHOLD, *PRESENTATION_OPTIONS)

    def __init__(self, *, model_path: str | None = None, revision: str | None = None,
                 device: str = "auto", dtype: str = "auto", batch_size: int | None = None,
                 probe_train: str | None = None, probe_train_split: str | None = None,
                 probe_folds: int = 5, probe_layer: int = -1, probe_c: float = 1.0,
                 probe_threshold: float = 0.5, segments: list[str] | None = None,
                 metadata_file: str | None = None, pad_ms: int = 0, pad_placement: str = "center",
                 pad_fill: str = "silence", pad_level_db: float = -60.0, worker_index: int | None = None):
        self.train_split = probe_train_split
        self.folds = int(probe_folds)
        self.layer = int(probe_layer)
        self.c = float(probe_c)
        self.decision_threshold = float(probe_threshold)
        config = self._locate(model_path=model_path, revision=revision, device=device, dtype=dtype,
                              worker_index=worker_index, batch_size=batch_size, pad_ms=pad_ms,
                              pad_placement=pad_placement, pad_fill=pad_fill, pad_level_db=pad_level_db)
        self.encoder_type = config["model_type"]
        self.train_dirs = self._training_dirs(probe_train, segments, metadata_file)
        self.metadata_file = metadata_file
        self.training = self._read_training_metadata()
        self._load_encoder()
        self.probes: dict[int | None, Any] | None = None   # fold -> fitted probe; None: all rows
        self.fold_of: dict[str, set[int]] = {}             # audio hash -> folds holding it
        self.fold_of_source: dict[str, int] = {}           # training source -> its fold
        # presented-waveform hash -> pooled features, from training: a case the runner asks
        # about later is not encoded twice (the same samples give the same features).
        self._encoded: dict[str, np.ndarray] = {}
        self._encode_ms: float | None = None

    # -- the encoder ---------------------------------------------------------------------

    def _load_encoder(self) -> None:
        from transformers import AutoFeatureExtractor, AutoModel, WhisperModel

        self.features = self._from_pretrained(AutoFeatureExtractor)
        if self.encoder_type == "whisper":
            self.model = self._load_model(WhisperModel).get_encoder()
        else:
            self.model = self._load_model(AutoModel)
        layers = self.model.config.num_hidden_layers if self.encoder_type != "whisper" \
            else self.model.config.encoder_layers
        if not -(layers + 1) <= self.layer <= layers:
            raise BackendError(f"{LAYER.flag} {self.layer}: the encoder has {layers} layers "
                               f"(0 to {layers}, or -1 for the last)")

    def effective_input(self, n_samples: int) -> int:
        if self.encoder_type == "whisper":
            from qsm_eval.backends.whisper import encoder_positions
            return encoder_positions(n_samples, self.features.hop_length, self.features.nb_max_frames)
        # The feature encoder's convolutions, unpadded: (L - kernel) // stride + 1 each.
        length = n_samples
        for kernel, stride in zip(self.model.config.conv_kernel, self.model.config.conv_stride):
            length = (length - kernel) // stride + 1
            if length <= 0:
                return 0
        return length

    def max_samples(self) -> int | None:
        return self.features.n_samples if self.encoder_type == "whisper" else None

    def least_input(self) -> str:
        if self.encoder_type == "whisper":
            return "one sample"
        least = self._least_samples()
        return f"{least} samples ({1000 * least / SAMPLE_RATE:g} ms, the convolutions' receptive field)"

    @functools.cache
    def _least_samples(self) -> int:
        return next(n for n in range(1, SAMPLE_RATE) if self.effective_input(n) > 0)

    def model_padding(self) -> str | None:
        if self.encoder_type == "whisper":
            return f"model zero-pads to {self.features.n_samples * 1000 // SAMPLE_RATE} ms"
        return None

    def model_label(self) -> str:
        return f"the {self.encoder_type} encoder"

    def threshold(self) -> float:
        return self.decision_threshold

    def pooled_features(self, rows: list[PresentedRow]) -> np.ndarray:
        """(clips, hidden): each clip's layer features, averaged over the frames holding it.

        Waveform encoders get clips of one length per call, unpadded, so no clip's features
        depend on another's padding (group-normalised wav2vec2 models would otherwise); the
        Whisper encoder gets its fixed window and only the clip's positions are averaged.
        """
        import torch

        out = np.zeros((len(rows), self.model.config.hidden_size if self.encoder_type != "whisper"
                        else self.model.config.d_model), dtype=np.float64)
        if self.encoder_type == "whisper":
            groups = [list(range(len(rows)))]
        else:
            by_length: dict[int, list[int]] = {}
            for i, row in enumerate(rows):
                by_length.setdefault(len(row.waveform), []).append(i)
            groups = list(by_length.values())
        for group in groups:
            waveforms = [rows[i].waveform for i in group]
            inputs = self.features(waveforms, sampling_rate=SAMPLE_RATE, return_tensors="pt")
            values = inputs["input_features" if self.encoder_type == "whisper" else "input_values"]
            with torch.inference_mode():
                hidden = self.model(values.to(self.device, self.dtype),
                                    output_hidden_states=True).hidden_states[self.layer]
            for row_in_call, i in enumerate(group):
                frames = hidden[row_in_call, :rows[i].n_input].float()
                out[i] = frames.mean(dim=0).cpu().numpy()
        return out

    # -- the training data ---------------------------------------------------------------

    @staticmethod
    def _training_dirs(probe_train, segments, metadata_file) -> list[str]:
        from importlib.resources import files

        from qsm_eval.segments import METADATA_FILE, SegmentSetError, expand_set_paths

        if probe_train:
            patterns = [p for p in probe_train.split(os.pathsep) if p]
        else:
            # The sets being evaluated; without --qsm-segments that is the bundled demo set.
            patterns = list(segments or [str(files("qsm_eval") / "data" / "demo")])
        try:
            return [str(d) for d in expand_set_paths(patterns, metadata_file=metadata_file or METADATA_FILE)]
        except SegmentSetError as exc:
            raise BackendError(f"linear-probe: the probe's training sets: {exc}") from exc

    def _read_training_metadata(self):
        from qsm_eval.segments import METADATA_FILE, SegmentSet, SegmentSetError

        segments, self.train_sha256 = [], []
        for directory in self.train_dirs:
            try:
                loaded = SegmentSet.load(directory, self.metadata_file or METADATA_FILE)
            except SegmentSetError as exc:
                raise BackendError(f"linear-probe: cannot fit the probe on {directory}: {exc}") from exc
            segments.extend(loaded)
            self.train_sha256.append(loaded.metadata_sha256)
        if self.train_split is not None:
            segments = [s for s in segments if s.split == self.train_split]
            if not segments:
                raise BackendError(f"linear-probe: no segment of {', '.join(self.train_dirs)} has split "
                                   f"{self.train_split!r} ({TRAIN_SPLIT.flag}); name a split the sets have")
        if len({s.label for s in segments}) < 2:
            raise BackendError("linear-probe: the probe's training data must hold both SPEECH and "
                               "NONSPEECH segments")
        return segments

    def _training_rows(self) -> tuple[list[TrainingRow], int]:
        """Readable training clips (and how many were left out: unreadable or too short)."""
        from qsm_eval.segments import AudioError, load_segment_audio

        rows, left_out = [], 0
        for segment in self.training:
            try:
                audio = load_segment_audio(segment)
            except AudioError:
                left_out += 1
                continue
            request = AudioRequest(segment.key, audio, segment.duration_ms,
                                   seed=stable_seed("presentation", segment.dataset, segment.audio_path,
                                                    segment.segment_id))
            rows.append(TrainingRow(key=segment.key, label=int(segment.label == "SPEECH"),
                                    group=segment.source_id or segment.key, audio=audio_hash(audio),
                                    request=request))
        return rows, left_out

    def fit(self) -> None:
        """Extract every training clip's features and fit the fold probes and the whole-data probe."""
        from sklearn.model_selection import GroupKFold

        rows, left_out = self._training_rows()
        presented = [self.present(r.request, i) for i, r in enumerate(rows)]
        usable = [(row, p) for row, p in zip(rows, presented) if isinstance(p, PresentedRow)]
        self.left_out = left_out + len(rows) - len(usable)
        if not usable:
            raise BackendError("linear-probe: no training clip could be shown to the encoder")
        began = time.perf_counter()
        features = np.concatenate([self.pooled_features([p for _, p in usable[i:i + self.batch_size]])
                                   for i in range(0, len(usable), self.batch_size)])
        self._encode_ms = 1000.0 * (time.perf_counter() - began) / len(usable)
        for (_, presented_row), vector in zip(usable, features):
            self._encoded[audio_hash(presented_row.waveform)] = vector
        labels = np.array([row.label for row, _ in usable])
        groups = np.array([row.group for row, _ in usable])
        n_groups = len(set(groups))
        if n_groups < 2:
            raise BackendError("linear-probe: cross-fitting needs at least two sources in the training data")
        folds = min(self.folds, n_groups)
        self.probes = {None: self._fit_one(features, labels)}
        for fold, (train, held_out) in enumerate(GroupKFold(n_splits=folds).split(features, labels, groups)):
            self.probes[fold] = self._fit_one(features[train], labels[train], fold)
            for i in held_out:
                self.fold_of.setdefault(usable[i][0].audio, set()).add(fold)
                self.fold_of_source[usable[i][0].group] = fold
        self.n_training = len(usable)
        self.n_sources = n_groups
        self.n_folds = folds

    def _fit_one(self, features, labels, fold: int | None = None):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if len(set(labels)) < 2:
            raise BackendError(f"linear-probe: the training data outside fold {fold} holds one class "
                               f"only; use fewer --qsm-probe-folds or more sources")
        return make_pipeline(StandardScaler(), LogisticRegression(C=self.c, max_iter=1000)).fit(features, labels)

    def _probe_for(self, request: AudioRequest):
        """The probe that never saw this clip's source: its fold's, or the whole-data probe.

        The clip's fold is found by its samples (it is a training clip) and by its source_id
        (another clip of a training recording, e.g. from a set built from the same sources).
        """
        folds = set(self.fold_of.get(audio_hash(request.waveform), set()))
        if request.source_id is not None and request.source_id in self.fold_of_source:
            folds.add(self.fold_of_source[request.source_id])
        if len(folds) > 1:
            raise BackendError(f"linear-probe: {request.key} belongs to training folds {sorted(folds)} "
                               f"(its samples and its source_id are in different folds); no probe "
                               f"fitted here never saw it")
        return (next(iter(folds)) if folds else None), self.probes[next(iter(folds)) if folds else None]

    # -- answers -------------------------------------------------------------------------

    @property
    def training_encode_ms(self) -> float | None:
        """Encoder time per training clip while fitting (None before the fit): an answer for a
        clip encoded then counts it into its latency."""
        return self._encode_ms

    def warmup(self) -> None:
        if self.probes is None:
            self.fit()

    def score(self, rows: list[PresentedRow], prepared=None) -> Scores:
        if self.probes is None:
            self.fit()
        known = [self._encoded.get(audio_hash(row.waveform)) for row in rows]
        fresh = [row for row, vector in zip(rows, known) if vector is None]
        encoded = iter(self.pooled_features(fresh)) if fresh else iter(())
        features = [vector if vector is not None else next(encoded) for vector in known]
        earlier_ms = [0.0 if vector is None else self._encode_ms for vector in known]
        p_speech, raw = [], []
        for row, vector in zip(rows, features):
            fold, probe = self._probe_for(row.request)
            p = float(probe.predict_proba(vector[None, :])[0, list(probe.classes_).index(1)])
            p_speech.append(p)
            raw.append(f"probe={'all' if fold is None else f'fold{fold}'} p={p:.4f}")
        return Scores(p_speech=p_speech, raw_output=raw, earlier_ms=earlier_ms)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "encoder": self.encoder_type, "probe_layer": self.layer,
                "probe_folds": self.folds, "probe_c": self.c, "probe_train": self.train_dirs,
                "probe_train_split": self.train_split, "probe_train_metadata_sha256": self.train_sha256,
                "training_segments": len(self.training),
                "p_speech": "logistic regression on mean-pooled encoder features, out-of-fold by source"}
