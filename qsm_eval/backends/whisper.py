"""Whisper as a speech detector (``--qsm-model whisper``): 1 - P(no speech).

Whisper's decoder, given only ``<|startoftranscript|>``, predicts the next token over its whole
vocabulary; the probability it puts on the no-speech token (``<|nospeech|>``, called
``<|nocaptions|>`` in the older multilingual checkpoints) is the no-speech probability that
openai-whisper and faster-whisper compute to skip silent windows: a softmax over the full
vocabulary at the position of <|startoftranscript|>, before any logit filter. One encoder pass
and one decoder position per clip; p_speech = 1 - P(no speech).

- Decision: openai-whisper treats a window as silent when P(no speech) > no_speech_threshold,
  0.6 by default (its transcribe() default); so SPEECH here when P(no speech) <= the threshold
  (``--qsm-whisper-no-speech-threshold``), i.e. p_speech >= 1 - threshold.
- What the model is shown: the feature extractor zero-pads every clip to its window (30 s,
  3000 mel frames of 10 ms, in every released checkpoint; read from the checkpoint's
  preprocessor_config); the encoder's stride-2 convolution halves the frames, so a clip of
  ``ceil(samples / hop)`` frames fills ``(frames - 1) // 2 + 1`` encoder positions
  (n_audio_tokens). Any non-empty clip gets at least one position: none is refused as short.
- The no-speech token is read from the tokenizer (whichever of the two spellings it has) and
  checked against generation_config (it sits just before ``<|notimestamps|>``), so a
  checkpoint whose vocabulary has neither is refused instead of scored on the wrong token.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from qsm_eval.audio import SAMPLE_RATE
from qsm_eval.backends.base import BackendError, Option
from qsm_eval.backends.hf_audio import PresentedRow, Scores, TransformersAudioBackend
from qsm_eval.backends.presentation import PRESENTATION_OPTIONS
from qsm_eval.options import is_probability

DEFAULT_MODEL = "openai/whisper-large-v3"
START_OF_TRANSCRIPT = "<|startoftranscript|>"
NO_SPEECH_TOKENS = ("<|nospeech|>", "<|nocaptions|>")   # newer, older spelling

NO_SPEECH_THRESHOLD = Option(
    "whisper_no_speech_threshold", float, 0.6,
    "whisper: NONSPEECH when P(no speech) > this; default 0.6, openai-whisper's no_speech_threshold",
    check=is_probability, allowed="a probability from 0 to 1")


def encoder_positions(n_samples: int, hop_length: int, max_frames: int) -> int:
    """Encoder positions holding a clip: its mel frames (one per hop), halved by the stride-2 conv."""
    if n_samples <= 0:
        return 0
    frames = min(math.ceil(n_samples / hop_length), max_frames)
    return (frames - 1) // 2 + 1


def no_speech_token_id(tokenizer, generation_config) -> tuple[str, int]:
    """(spelling, id) of the no-speech token; BackendError when the checkpoint has none."""
    unk = getattr(tokenizer, "unk_token_id", None)
    for token in NO_SPEECH_TOKENS:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is not None and token_id != unk:
            break
    else:
        raise BackendError(f"whisper: the tokenizer has none of {', '.join(NO_SPEECH_TOKENS)}; "
                           f"P(no speech) cannot be read from this checkpoint")
    no_timestamps = getattr(generation_config, "no_timestamps_token_id", None)
    if no_timestamps is not None and no_timestamps - 1 != token_id:
        # transformers' own no-speech detection uses no_timestamps_token_id - 1: both must agree.
        raise BackendError(f"whisper: the tokenizer's {token} is id {token_id} but generation_config "
                           f"puts it at no_timestamps_token_id - 1 = {no_timestamps - 1}; the "
                           f"checkpoint's tokenizer and generation_config disagree")
    return token, token_id


def log_mel(features, waveforms, device):
    """Whisper's log-mel input features (transformers' torch STFT) on ``device``: on a GPU the
    model's own, so a GPU run does not wait on the CPU for 30 s spectrograms."""
    return features(waveforms, sampling_rate=SAMPLE_RATE, return_tensors="pt", device=str(device)).input_features


def no_speech_probabilities(model, input_features, *, start_id: int, no_speech_id: int, device, dtype):
    """P(no speech) per clip (numpy): softmax over the vocabulary after <|startoftranscript|>."""
    import torch

    start = torch.full((len(input_features), 1), start_id, dtype=torch.long, device=device)
    with torch.inference_mode():
        logits = model(input_features=input_features.to(device, dtype), decoder_input_ids=start).logits
    return logits[:, 0].float().softmax(dim=-1)[:, no_speech_id].cpu().numpy()


class WhisperBackend(TransformersAudioBackend):
    name = "whisper"
    default_model = DEFAULT_MODEL
    model_types = ("whisper",)
    family = "a Whisper checkpoint"
    input_unit = "encoder positions"
    options = (NO_SPEECH_THRESHOLD, *PRESENTATION_OPTIONS)

    def __init__(self, *, model_path: str | None = None, revision: str | None = None,
                 device: str = "auto", dtype: str = "auto", batch_size: int | None = None,
                 whisper_no_speech_threshold: float = 0.6, pad_ms: int = 0,
                 pad_placement: str = "center", pad_fill: str = "silence", pad_level_db: float = -60.0,
                 worker_index: int | None = None):
        from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizer

        self.no_speech_threshold = float(whisper_no_speech_threshold)
        config = self._locate(model_path=model_path, revision=revision, device=device, dtype=dtype,
                              worker_index=worker_index, batch_size=batch_size, pad_ms=pad_ms,
                              pad_placement=pad_placement, pad_fill=pad_fill, pad_level_db=pad_level_db)
        self.features = self._from_pretrained(WhisperFeatureExtractor)
        tokenizer = self._from_pretrained(WhisperTokenizer)
        # The token ids are settled before the weights load: a checkpoint they do not fit is
        # refused in milliseconds.
        self.start_id = config.get("decoder_start_token_id")
        if tokenizer.convert_tokens_to_ids(START_OF_TRANSCRIPT) != self.start_id:
            raise BackendError(f"whisper: config.json's decoder_start_token_id {self.start_id} is not "
                               f"the tokenizer's {START_OF_TRANSCRIPT}; the checkpoint is inconsistent")
        self.no_speech_token, self.no_speech_id = no_speech_token_id(tokenizer, self._generation_config())
        self.model = self._load_model(WhisperForConditionalGeneration)

    def _generation_config(self):
        """generation_config.json, or None for a checkpoint saved without one."""
        from transformers import GenerationConfig

        if not (Path(self.source) / "generation_config.json").is_file():
            return None
        return self._from_pretrained(GenerationConfig)

    def effective_input(self, n_samples: int) -> int:
        return encoder_positions(n_samples, self.features.hop_length, self.features.nb_max_frames)

    def max_samples(self) -> int:
        return self.features.n_samples

    def least_input(self) -> str:
        return "one sample"

    def model_padding(self) -> str:
        return f"model zero-pads to {self.features.n_samples * 1000 // SAMPLE_RATE} ms"

    def model_label(self) -> str:
        return "Whisper"

    def threshold(self) -> float:
        return 1.0 - self.no_speech_threshold

    def prepare_rows(self, rows: list[PresentedRow]):
        """The features, ahead of the model, when they are computed on the CPU."""
        if self.device.type == "cuda":
            return None
        return log_mel(self.features, [row.waveform for row in rows], self.device)

    def score(self, rows: list[PresentedRow], prepared=None) -> Scores:
        features = prepared if prepared is not None else log_mel(
            self.features, [row.waveform for row in rows], self.device)
        no_speech = no_speech_probabilities(self.model, features, start_id=self.start_id,
                                            no_speech_id=self.no_speech_id, device=self.device,
                                            dtype=self.dtype)
        return Scores(p_speech=[1.0 - float(p) for p in no_speech],
                      raw_output=[f"P({self.no_speech_token})={float(p):.4f}" for p in no_speech])

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "no_speech_token": self.no_speech_token,
                "no_speech_token_id": self.no_speech_id,
                "whisper_no_speech_threshold": self.no_speech_threshold,
                "p_speech": "1 - softmax(logits after <|startoftranscript|>)[no-speech token]"}
