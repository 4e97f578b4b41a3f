"""Model inputs for a batch of clips: the expanded prompt text and the log-mel features.

``build_processor_inputs`` calls the family's own processor (every profile but Qwen2-Audio and
Voxtral); ``build_conversation_inputs`` has the family's chat encoder read each clip (Voxtral).
For Qwen2-Audio, ``build_inputs`` does what Qwen2AudioProcessor does (one <|AUDIO|> per encoder output token, the
WhisperFeatureExtractor's features and frame mask) with two differences that matter for
speed and nothing else: the features can be computed for fewer than the 30 s of frames the
processor always pads to (the fast encoder path), and on the model's device. Rows are
left-padded, and position ids count only real tokens, so a clip's row is the same sequence
whatever else shares its batch. tests/audio_llm checks these inputs against the processor's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qsm_eval.backends.audio_llm.presentation import MAX_FRAMES, SAMPLE_RATE, audio_tokens_for_frames
from qsm_eval.backends.audio_llm.prompts import AUDIO_PLACEHOLDER


@dataclass
class BatchInputs:
    input_ids: object               # (batch, seq) long, left-padded
    attention_mask: object          # (batch, seq)
    position_ids: object            # (batch, seq): 0.. over real tokens only
    input_features: object          # (batch, mel bins, frames)
    feature_attention_mask: object  # (batch, frames): 1 on the clip's own frames; None: the model takes none
    n_audio_tokens: list[int]
    feature_mask_name: str | None = "feature_attention_mask"   # the model's keyword for the frame mask

    def to(self, device) -> BatchInputs:
        return BatchInputs(*(None if t is None else t.to(device) for t in (
            self.input_ids, self.attention_mask, self.position_ids,
            self.input_features, self.feature_attention_mask)), self.n_audio_tokens, self.feature_mask_name)

    def audio_forward(self) -> dict:
        """Token ids and audio inputs under the model's own keywords (no masks or positions)."""
        forward = {"input_ids": self.input_ids, "input_features": self.input_features}
        if self.feature_mask_name:
            forward[self.feature_mask_name] = self.feature_attention_mask
        return forward


def _positions(mask):
    """Position ids counting real tokens only, so left padding does not shift a row."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def build_inputs(processor, chat_text: str, waveforms: list[np.ndarray], *, frames: int = MAX_FRAMES,
                 feature_device: str = "cpu") -> BatchInputs:
    """Inputs for ``waveforms`` (16 kHz float32), with ``frames`` mel frames per clip."""
    import torch

    extractor = processor.feature_extractor
    features = extractor(
        waveforms, sampling_rate=SAMPLE_RATE, padding="max_length",
        max_length=frames * extractor.hop_length, truncation=True,
        return_attention_mask=True, return_tensors="pt", device=feature_device)
    frame_mask = features["attention_mask"]
    counts = [audio_tokens_for_frames(int(n)) for n in frame_mask.sum(-1).tolist()]

    texts = [chat_text.replace(AUDIO_PLACEHOLDER, AUDIO_PLACEHOLDER * n) for n in counts]
    tokens = processor.tokenizer(texts, padding=True, padding_side="left", return_tensors="pt",
                                 add_special_tokens=False)
    mask = tokens["attention_mask"]
    return BatchInputs(input_ids=tokens["input_ids"], attention_mask=mask, position_ids=_positions(mask),
                       input_features=features["input_features"].to(torch.float32),
                       feature_attention_mask=frame_mask, n_audio_tokens=counts)


def build_processor_inputs(processor, profile, prompt_text: str, waveforms: list[np.ndarray]) -> BatchInputs:
    """Inputs from the family's processor itself, left-padded; audio tokens counted in the ids."""
    # Text padding goes to the tokenizer alone: a plain "padding" would reach the feature
    # extractor too and cut the features short of the 30 s the encoder expects.
    out = processor(text=[prompt_text] * len(waveforms), audio=list(waveforms), sampling_rate=SAMPLE_RATE,
                    text_kwargs={"padding": "longest"}, return_tensors="pt")
    return _from_processor_output(out, processor, profile)


def build_conversation_inputs(processor, profile, prompt, waveforms: list[np.ndarray]) -> BatchInputs:
    """Inputs of a family whose chat encoder reads the clip itself (Voxtral: mistral-common,
    which takes audio as a file's bytes): one chat per clip, encoded and left-padded together."""
    from qsm_eval.audio import wav_base64

    chats = [prompt.messages(audio={"base64": wav_base64(w)}, system_turn=profile.system_turn)
             for w in waveforms]
    out = processor.apply_chat_template(chats, tokenize=True, return_dict=True, return_tensors="pt")
    return _from_processor_output(out, processor, profile)


def _from_processor_output(out, processor, profile) -> BatchInputs:
    """BatchInputs from what a family's processor returned: audio tokens counted in the ids,
    the feature mask under the profile's keyword (none where the model takes none)."""
    import torch

    mask = out["attention_mask"]
    audio_id = processor.tokenizer.convert_tokens_to_ids(profile.audio_token)
    counts = (out["input_ids"] == audio_id).sum(-1).tolist()
    return BatchInputs(input_ids=out["input_ids"], attention_mask=mask, position_ids=_positions(mask),
                       input_features=out["input_features"].to(torch.float32),
                       feature_attention_mask=out[profile.feature_mask] if profile.feature_mask else None,
                       n_audio_tokens=counts, feature_mask_name=profile.feature_mask)
