"""Profiles: what differs between the audio-LLM families the audio-llm backend serves.

A profile names the transformers classes (never code shipped with a checkpoint), the
config.json ``model_type`` values a checkpoint of the family has (checked before any weight
loads), the placeholder the processor expands into one token per audio frame group, the
keyword of the feature mask the model takes, and how the prompt text is built:

- ``chat``: the checkpoint's own chat template (``profile default``: the profile's template
  when the checkpoint has none; refused when the profile has none either);
- ``raw``: a fixed text with no chat template at all, as the base Qwen2-Audio-7B documents
  ("<|audio_bos|><|AUDIO|><|audio_eos|>" followed by the question);
- ``mistral``: no Jinja template; mistral-common encodes the chat, clip included (Voxtral).

Everything else (scoring, parsing, presentation) is shared.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    family: str                     # as users know it, for messages
    default_model: str              # hub id used when --qsm-model-path is not given
    model_types: tuple[str, ...]    # config.json model_type values of this family
    model_class: str                # transformers class of the model
    processor_class: str            # transformers class of the processor
    audio_token: str                # the placeholder expanded per clip
    feature_mask: str | None        # keyword of the feature-frame mask in the model's forward (None: takes none)
    prompt_format: str              # "chat", "raw" or "mistral"
    raw_prefix: str = ""            # raw prompts: the audio part before the question
    # Qwen2-Audio only: inputs built here (fewer mel frames) and the fast encoder path.
    own_inputs: bool = False
    # A family whose checkpoint holds more than the text-answering model (Qwen2.5-Omni's
    # speech-output talker): the config.json key of the answering part's config, the prefix
    # its weights carry there, and the prefixes of the parts never built (their weights are
    # left unread, not taken for a sign of another model).
    # Audio tokens a clip becomes: None, one per 40 ms (the Whisper-style front end with two
    # stride-2 stages); a number, that many per started 30 s window (Voxtral: 375, 12.5 Hz).
    tokens_per_window: int | None = None
    # Whether the chat may hold a system turn beside audio (Voxtral's tokenizer refuses one).
    system_turn: bool = True
    # Python packages the family's processor needs beyond transformers, and the extra that has them.
    needs: tuple[str, ...] = ()
    extra: str = "qwen"
    config_part: str | None = None
    weights_prefix: str | None = None
    unused_weights: tuple[str, ...] = ()

    @property
    def fast_encoder(self) -> bool:
        return self.own_inputs


QWEN2_AUDIO = Profile(
    name="qwen2-audio", family="Qwen2-Audio Instruct", default_model="Qwen/Qwen2-Audio-7B-Instruct",
    model_types=("qwen2_audio",), model_class="Qwen2AudioForConditionalGeneration",
    processor_class="Qwen2AudioProcessor", audio_token="<|AUDIO|>", feature_mask="feature_attention_mask",
    prompt_format="chat", own_inputs=True)

QWEN2_AUDIO_BASE = Profile(
    name="qwen2-audio-base", family="Qwen2-Audio (base)", default_model="Qwen/Qwen2-Audio-7B",
    model_types=("qwen2_audio",), model_class="Qwen2AudioForConditionalGeneration",
    processor_class="Qwen2AudioProcessor", audio_token="<|AUDIO|>", feature_mask="feature_attention_mask",
    prompt_format="raw", raw_prefix="<|audio_bos|><|AUDIO|><|audio_eos|>", own_inputs=True)

AUDIO_FLAMINGO_3 = Profile(
    name="audio-flamingo-3", family="Audio Flamingo 3", default_model="nvidia/audio-flamingo-3-hf",
    model_types=("audioflamingo3",), model_class="AudioFlamingo3ForConditionalGeneration",
    processor_class="AudioFlamingo3Processor", audio_token="<sound>", feature_mask="input_features_mask",
    prompt_format="chat")

# Qwen2.5-Omni: the thinker answers in text and is loaded on its own, from the checkpoint's
# thinker_config and thinker.* weights; the talker and token2wav (speech output) are never built.
# Its processor holds a video processor, which transformers builds on torchvision.
QWEN2_5_OMNI = Profile(
    name="qwen2.5-omni", family="Qwen2.5-Omni (thinker)", default_model="Qwen/Qwen2.5-Omni-7B",
    model_types=("qwen2_5_omni",), model_class="Qwen2_5OmniThinkerForConditionalGeneration",
    processor_class="Qwen2_5OmniProcessor", audio_token="<|AUDIO|>", feature_mask="feature_attention_mask",
    prompt_format="chat", needs=("torchvision",), extra="omni",
    config_part="thinker_config", weights_prefix="thinker.",
    unused_weights=("talker.", "token2wav."))

# Voxtral: the chat is encoded by mistral-common from the checkpoint's tekken.json, with the
# clip inside it (its processor takes audio in no other way); each clip fills a 30 s window of
# 375 audio tokens; mistral-common refuses a system turn beside audio before tokenizer v13.
VOXTRAL = Profile(
    name="voxtral", family="Voxtral", default_model="mistralai/Voxtral-Mini-3B-2507",
    model_types=("voxtral",), model_class="VoxtralForConditionalGeneration",
    processor_class="VoxtralProcessor", audio_token="[AUDIO]", feature_mask=None,
    prompt_format="mistral", tokens_per_window=375, system_turn=False,
    needs=("mistral_common",), extra="voxtral")

PROFILES = {p.name: p for p in (QWEN2_AUDIO, QWEN2_AUDIO_BASE, AUDIO_FLAMINGO_3, QWEN2_5_OMNI, VOXTRAL)}
AUTO = "auto"


def profile_named(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        from qsm_eval.backends.base import BackendError
        raise BackendError(f"--qsm-llm-profile {name!r} is not one of {AUTO}, {', '.join(PROFILES)}") from None


def detect_profile(model_type: str | None, has_chat_template: bool) -> Profile | None:
    """The profile of a checkpoint from its config.json model_type (None when no profile fits).

    Qwen2-Audio Instruct and base share one architecture: only the chat template tells them
    apart, and the base checkpoint ships none.
    """
    if model_type in QWEN2_AUDIO.model_types:
        return QWEN2_AUDIO if has_chat_template else QWEN2_AUDIO_BASE
    for profile in PROFILES.values():
        if model_type in profile.model_types:
            return profile
    return None
