"""Audio LLMs that transformers supports natively (``--qsm-model audio-llm``), one profile per family.

``--qsm-model qwen2-audio`` is the same backend with the Qwen2-Audio Instruct profile.
The parts: profiles (what differs per family), loading (checkpoint, family check, device,
dtype, weights), prompts (question and prompt text), presentation (audio-token counts over the
shared container policy), inputs (text and features of a batch), encoder (Qwen2-Audio's fast
encoder path), scoring (whole-answer probabilities or generate), parsing (generated text to a
label), timing. torch and transformers are imported when the backend is built, not when this
module is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qsm_eval.backends.audio_llm import loading, prompts
from qsm_eval.backends.audio_llm.presentation import MAX_FRAMES, SAMPLE_RATE, WINDOW_SAMPLES, mel_frames, present
from qsm_eval.backends.audio_llm.profiles import AUTO, PROFILES, QWEN2_AUDIO, profile_named
from qsm_eval.backends.audio_llm.scoring import LOW_ANSWER_MASS, SCORING_MODES
from qsm_eval.backends.base import AudioRequest, Backend, BackendError, BackendIdentity, Prediction
from qsm_eval.backends.presentation import PRESENTATION_OPTIONS, PresentationPolicy, zero_input_message
from qsm_eval.options import Option, at_least_one, parse_bool

LLM_PROFILE = Option("llm_profile", str, AUTO, "audio-llm: the model family (auto: read from the "
                     "checkpoint's config.json model_type; Qwen2-Audio without a chat template is the "
                     "base model); default auto", choices=(AUTO, *PROFILES))
SCORING = Option("scoring", str, "logits", "logits (p_speech from the probabilities of the two whole "
                 "answers) or generate (greedy text, strict parser); default logits", choices=SCORING_MODES)
PROMPT = Option("prompt", str, prompts.DEFAULT_PROMPT, "built-in prompt (labels, ab) or a prompt "
                "file path; default labels")
FAST_ENCODER = Option("fast_encoder", parse_bool, False, "Qwen2-Audio: encode only the mel frames a "
                      "batch needs instead of 30 s: the same answers up to float rounding (tested: 1e-5 "
                      "in float32, 2e-3 in bfloat16); default off until checked on the real weights")
LOAD_IN = Option("load_in", str, "none", "load the weights in 8bit or 4bit (bitsandbytes, CUDA); "
                 "default none", choices=loading.LOAD_IN)
DEVICE_MAP = Option("device_map", str, None, "a transformers device_map (e.g. auto) to spread the "
                    "model over devices; default: the whole model on --qsm-device")
MAX_NEW_TOKENS = Option("max_new_tokens", int, 8, "generate mode: most new tokens per answer; "
                        "default 8", check=at_least_one, allowed="an integer >= 1")
PAD = {option.name: option.default for option in PRESENTATION_OPTIONS}


@dataclass
class PreparedChunk:
    """One model call's clips and, when the features are computed on the CPU, its inputs."""

    clips: list
    inputs: Any = None          # BatchInputs on the CPU, or None: built at prediction time
    features_s: float = 0.0     # seconds the preparation took


@dataclass
class PreparedClips:
    """A batch after ``prepare``: the refused clips' answers, and the chunks left to predict."""

    answers: list[Prediction | None]
    chunks: list[tuple[list[int], PreparedChunk]] = field(default_factory=list)


class AudioLlmBackend(Backend):
    name = "audio-llm"
    # Clips are short, so even 64 rows of ~100 tokens are a small forward pass for a 7B model.
    max_batch_size = 64
    options = (LLM_PROFILE, SCORING, PROMPT, *PRESENTATION_OPTIONS, FAST_ENCODER, LOAD_IN, DEVICE_MAP,
               MAX_NEW_TOKENS)

    def __init__(self, *, model_path: str | None = None, revision: str | None = None,
                 device: str = "auto", dtype: str = "auto", batch_size: int | None = None,
                 llm_profile: str = LLM_PROFILE.default, scoring: str = SCORING.default,
                 prompt: str = PROMPT.default, pad_ms: int = PAD["pad_ms"],
                 pad_placement: str = PAD["pad_placement"], pad_fill: str = PAD["pad_fill"],
                 pad_level_db: float = PAD["pad_level_db"], fast_encoder: bool = FAST_ENCODER.default,
                 load_in: str = LOAD_IN.default, device_map: str | None = DEVICE_MAP.default,
                 max_new_tokens: int = MAX_NEW_TOKENS.default, worker_index: int | None = None,
                 loaded: loading.LoadedModel | None = None):
        # One dict of the parameters for the parts that take them together (loading).
        self.settings = dict(
            model_path=model_path, revision=revision, device=device, dtype=dtype, batch_size=batch_size,
            llm_profile=llm_profile, scoring=scoring, prompt=prompt, pad_ms=pad_ms,
            pad_placement=pad_placement, pad_fill=pad_fill, pad_level_db=pad_level_db,
            fast_encoder=parse_bool(fast_encoder), load_in=load_in, device_map=device_map,
            max_new_tokens=int(max_new_tokens), worker_index=worker_index)
        if scoring not in SCORING_MODES:   # direct construction; create_backend checks it earlier
            raise BackendError(f"--qsm-scoring {scoring!r} is not one of {', '.join(SCORING_MODES)}")
        self.policy = PresentationPolicy.from_options(pad_ms=pad_ms, pad_placement=pad_placement,
                                                      pad_fill=pad_fill, pad_level_db=pad_level_db)
        self.prompt = prompts.resolve_prompt(prompt)
        wanted = self._requested_profile(llm_profile)
        self.loaded = loaded or loading.load(self.settings, wanted)
        self.profile = self.loaded.profile or wanted or QWEN2_AUDIO
        if self.settings["fast_encoder"] and not self.profile.fast_encoder:
            raise BackendError(f"--qsm-fast-encoder is a Qwen2-Audio path; profile {self.profile.name} "
                               f"has none: drop the option")
        self.rendered = prompts.render(self.prompt, self.processor, self.profile)
        self.answers = self._answer_sequences()
        from qsm_eval.backends.audio_llm.timing import StageTimer
        self.timer = StageTimer(self.loaded.device)
        self._warmup_s: float | None = None
        self._low_mass = 0

    def _requested_profile(self, name: str | None):
        """The profile asked for, or None to read it off the checkpoint."""
        name = name or AUTO
        return None if name == AUTO else profile_named(name)

    # -- what the runner and run.json see ---------------------------------------------------

    @property
    def processor(self):
        return self.loaded.processor

    @property
    def model_name(self) -> str:
        return self.settings.get("model_path") or self.profile.default_model

    @property
    def prompt_id(self) -> str:
        return self.prompt.prompt_id

    @property
    def prompt_sha256(self) -> str:
        return self.rendered.sha256

    def identity(self) -> BackendIdentity:
        return BackendIdentity(backend=self.name, model=self.model_name, prompt_id=self.prompt_id,
                               prompt_sha256=self.prompt_sha256)

    def describe(self) -> dict[str, Any]:
        import torch
        import transformers

        if self.loaded is None:
            return dict(self._closed_description)
        model, s = self.loaded.model, self.settings
        return {
            "backend": self.name,
            "model": self.model_name,
            "profile": self.profile.name,
            "model_type": self.loaded.model_type,
            "source": self.loaded.source,
            "revision": self.loaded.revision,
            "weights_sha256": self.loaded.weights_sha256,
            "device": str(self.loaded.device),
            "dtype": str(self.loaded.dtype).removeprefix("torch."),
            "load_in": self.loaded.load_in,
            "device_map": s.get("device_map"),
            "attn_implementation": getattr(model.config, "_attn_implementation", None),
            "scoring": s["scoring"],
            "max_new_tokens": s["max_new_tokens"] if s["scoring"] == "generate" else None,
            "fast_encoder": s["fast_encoder"],
            "chat_template": self.loaded.chat_template_source,
            "prompt_id": self.prompt_id,
            "prompt_sha256": self.prompt_sha256,
            "prompt_text": self.rendered.text,
            "answers": self.prompt.answers,
            "answer_sequences": None if self.answers is None else self.answers.describe(),
            "low_answer_mass_below": LOW_ANSWER_MASS,
            "padding": self.policy.describe(),
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        }

    def fingerprint(self) -> dict[str, Any]:
        """The description (every setting that changes an answer, and a local checkpoint's
        weights fingerprint) with the device's type but not its index: under xdist worker k
        runs on GPU k, and which GPU answered must not split the prediction cache."""
        fingerprint = super().fingerprint()
        fingerprint["describe"]["device"] = self.loaded.device.type
        return fingerprint

    def timings(self) -> dict[str, Any]:
        """Stage timings for run.json: features and forward seconds, cases, batches, warm-up.

        Each case's latency_ms is its batch's features+forward time divided by the batch size.
        """
        return {**self.timer.summary(), "warmup_s": self._warmup_s, "low_answer_mass_cases": self._low_mass,
                "latency_definition": "per case: (features + forward of its batch) / batch size"}

    # -- predictions -------------------------------------------------------------------------

    def cpu_threads(self) -> int:
        from qsm_eval.backends.hf_loading import cpu_threads
        return cpu_threads(self.loaded.device)

    def warmup(self) -> None:
        """One untimed batch (kernel selection, allocator), then the counters start from zero."""
        rng = np.random.default_rng(0)
        clip = (0.01 * rng.standard_normal(SAMPLE_RATE // 2)).astype(np.float32)
        size = min(int(self.settings.get("batch_size") or 2), self.max_batch_size)
        start = time.perf_counter()
        self.predict_batch([AudioRequest(key=f"warmup-{i}", waveform=clip, duration_ms=500)
                            for i in range(max(size, 1))])
        self._warmup_s = round(time.perf_counter() - start, 6)
        self.timer.reset()
        self._low_mass = 0

    def prepare(self, requests: list[AudioRequest]) -> PreparedClips:
        """Presentation, refusals and the CPU side of every chunk's inputs (features and
        tokens, unless the features are computed on the GPU): what the runner overlaps with
        the model's work on the batch before."""
        presented = [present(r, self.policy, self.profile) for r in requests]
        prepared = PreparedClips(answers=[None] * len(requests))
        runnable = []
        for i, (request, clip) in enumerate(zip(requests, presented)):
            problem = self._unservable(request, clip)
            if problem:
                failed = Prediction.failed(problem)
                failed.n_audio_tokens, failed.padding = clip.n_audio_tokens, clip.padding
                prepared.answers[i] = failed
            else:
                runnable.append(i)
        size = max(int(self.settings.get("batch_size") or self.max_batch_size), 1)
        for start in range(0, len(runnable), size):
            chunk = runnable[start:start + size]
            prepared.chunks.append((chunk, self._prepare_chunk([presented[i] for i in chunk])))
        return prepared

    def predict_prepared(self, prepared: PreparedClips) -> list[Prediction]:
        answers = list(prepared.answers)
        for chunk, inputs in prepared.chunks:
            for i, prediction in zip(chunk, self._predict_chunk(inputs)):
                answers[i] = prediction
        return answers

    def predict_batch(self, requests: list[AudioRequest]) -> list[Prediction]:
        return self.predict_prepared(self.prepare(requests))

    def _unservable(self, request: AudioRequest, clip) -> str | None:
        if clip.n_audio_tokens == 0:
            shortest = ("any non-empty clip" if self.profile.tokens_per_window
                        else "25 ms; one token per 40 ms")
            return zero_input_message(request.duration_ms, self.profile.family, "audio tokens", shortest)
        if self.profile.own_inputs and len(clip.waveform) > WINDOW_SAMPLES:
            return (f"clip of {request.duration_ms} ms is longer than the 30 s Qwen2-Audio's feature "
                    f"extractor takes; cut it into shorter segments")
        return None

    def _cpu_features(self) -> bool:
        """Whether the features are computed on the CPU (and so can be prepared ahead): the
        Qwen2-Audio path computes them on the model's GPU when it has one."""
        return not self.profile.own_inputs or self.loaded.device.type != "cuda"

    def _batch_inputs(self, clips, feature_device: str):
        from qsm_eval.backends.audio_llm.encoder import frames_needed
        from qsm_eval.backends.audio_llm.inputs import build_conversation_inputs, build_inputs, build_processor_inputs

        waveforms = [c.waveform for c in clips]
        if self.profile.prompt_format == "mistral":
            return build_conversation_inputs(self.processor, self.profile, self.prompt, waveforms)
        if not self.profile.own_inputs:
            return build_processor_inputs(self.processor, self.profile, self.rendered.text, waveforms)
        fast = self.settings["fast_encoder"]
        frames = frames_needed(max(mel_frames(len(w)) for w in waveforms)) if fast else MAX_FRAMES
        return build_inputs(self.processor, self.rendered.text, waveforms, frames=frames,
                            feature_device=feature_device)

    def _prepare_chunk(self, clips) -> PreparedChunk:
        if not self._cpu_features():
            return PreparedChunk(clips)
        started = time.perf_counter()
        batch = self._batch_inputs(clips, "cpu")
        return PreparedChunk(clips, batch, time.perf_counter() - started)

    def _inputs(self, prepared: PreparedChunk):
        from qsm_eval.backends.audio_llm.encoder import embed_inputs

        device, model = self.loaded.device, self.loaded.model
        batch = prepared.inputs
        if batch is None:
            batch = self._batch_inputs(prepared.clips, str(device))
        batch = batch.to(device)
        if not self.profile.own_inputs:
            return batch, None
        # Audio goes in as embeddings on the Qwen2-Audio path (fast or standard encoder):
        # transformers' generate on raw input_features mistakes a batch whose clips all have
        # one audio token for its legacy unexpanded format.
        embeds = embed_inputs(model, batch.input_ids, batch.input_features, batch.feature_attention_mask,
                              fast=self.settings["fast_encoder"])
        return batch, embeds

    def _predict_chunk(self, prepared: PreparedChunk) -> list[Prediction]:
        import torch

        from qsm_eval.backends.audio_llm.scoring import p_speech_and_mass, prefill, score_generate, score_logits

        s, model, tokenizer = self.settings, self.loaded.model, self.processor.tokenizer
        clips = prepared.clips
        before = dict(self.timer.seconds)
        # The features prepared ahead count in this chunk's time, added here (the timer is
        # this thread's): a case's latency is the whole cost of its answer.
        self.timer.seconds["features"] += prepared.features_s
        with self.timer.stage("features"):
            batch, embeds = self._inputs(prepared)
        if batch.n_audio_tokens != [c.n_audio_tokens for c in clips]:
            raise RuntimeError(f"audio-token counts disagree: inputs {batch.n_audio_tokens}, "
                               f"presentation {[c.n_audio_tokens for c in clips]}")
        forward = {"inputs_embeds": embeds} if embeds is not None else batch.audio_forward()
        with self.timer.stage("forward"), torch.inference_mode():
            try:
                state = prefill(model, forward, batch.attention_mask, batch.position_ids)
                if s["scoring"] == "logits":
                    scored = score_logits(state, tokenizer, self.answers)
                else:
                    rows = list(zip(*p_speech_and_mass(state, self.answers))) if self.answers else None
                    del state
                    generate_inputs = {**forward, "input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
                    scored = score_generate(model, tokenizer, generate_inputs, batch.input_ids.shape[1],
                                            self.prompt, rows, max_new_tokens=int(s["max_new_tokens"]))
            except torch.cuda.OutOfMemoryError as exc:
                raise BackendError(f"out of GPU memory on a batch of {len(clips)} clips; lower "
                                   f"--qsm-batch-size or use --qsm-load-in 8bit") from exc
        self.timer.count(len(clips))
        spent = sum(self.timer.seconds[k] - before.get(k, 0.0) for k in self.timer.seconds)
        latency_ms = 1000.0 * spent / len(clips)
        predictions = []
        for clip, answer in zip(clips, scored):
            confidence = None
            if answer.p_speech is not None and answer.label != "UNKNOWN":
                # The probability of the label given, which in generate mode is the parser's.
                confidence = answer.p_speech if answer.label == "SPEECH" else 1.0 - answer.p_speech
            if answer.answer_mass is not None and answer.answer_mass < LOW_ANSWER_MASS:
                self._low_mass += 1
            predictions.append(Prediction(
                label=answer.label, p_speech=answer.p_speech, raw_output=answer.raw_output,
                confidence=confidence, n_audio_tokens=clip.n_audio_tokens, parse_status=answer.parse_status,
                padding=clip.padding, latency_ms=latency_ms, answer_mass=answer.answer_mass))
        return predictions

    def _answer_sequences(self):
        from qsm_eval.backends.audio_llm.scoring import answer_sequences
        try:
            return answer_sequences(self.processor.tokenizer, self.prompt)
        except BackendError:
            if self.settings["scoring"] == "logits":
                raise
            return None  # generate mode still works; it just has no p_speech

    def close(self) -> None:
        import torch

        if self.loaded is not None:
            self._closed_description = self.describe()  # run.json may still ask after close
        self.loaded = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


class Qwen2AudioBackend(AudioLlmBackend):
    """``--qsm-model qwen2-audio``: the audio-llm backend with the Qwen2-Audio Instruct profile."""

    name = "qwen2-audio"

    def _requested_profile(self, name: str | None):
        if name not in (None, AUTO, QWEN2_AUDIO.name):
            raise BackendError(f"--qsm-llm-profile {name} is not the qwen2-audio backend's profile; "
                               f"use --qsm-model audio-llm --qsm-llm-profile {name}")
        return QWEN2_AUDIO


__all__ = ["AudioLlmBackend", "Qwen2AudioBackend"]
