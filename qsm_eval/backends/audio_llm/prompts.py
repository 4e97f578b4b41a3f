"""Prompts: the question put to the model, its two answers, and the exact chat text it sees.

A prompt file has header lines ``key: value`` (``system``, ``speech``, ``nonspeech``), a
line ``---``, then the user text; lines starting with ``#`` before the ``---`` are comments.
The built-ins live in qsm_eval/prompts/<name>.txt in that same format. The system prompt is
always written into the chat, so the chat template's own default never applies silently
(a raw-prompt profile, which has no chat, uses the user text only).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from qsm_eval.backends.base import BackendError

BUILTIN_DIR = Path(__file__).resolve().parents[2] / "prompts"
DEFAULT_PROMPT = "labels"
AUDIO_PLACEHOLDER = "<|AUDIO|>"
_KEYS = ("system", "speech", "nonspeech")


@dataclass(frozen=True)
class Prompt:
    prompt_id: str          # the built-in's name, or "file:<path>"
    system: str
    user: str
    speech_answer: str      # what the model says for SPEECH ("SPEECH", "A")
    nonspeech_answer: str   # what the model says for NONSPEECH ("NONSPEECH", "B")

    @property
    def answers(self) -> dict[str, str]:
        return {"SPEECH": self.speech_answer, "NONSPEECH": self.nonspeech_answer}

    def messages(self, audio: dict | None = None, system_turn: bool = True) -> list[dict]:
        """The chat: the explicit system turn (unless the family refuses one beside audio),
        then the clip followed by the question. ``audio``: the audio part's source (a
        template only marks where the clip goes; mistral-common reads the clip itself)."""
        turns = [{"role": "system", "content": self.system}] if system_turn else []
        return turns + [
            {"role": "user", "content": [{"type": "audio", **(audio or {"audio_url": "clip"})},
                                         {"type": "text", "text": self.user}]},
        ]


@dataclass(frozen=True)
class RenderedPrompt:
    """The chat text with one <|AUDIO|> placeholder, before the processor expands it per clip."""

    prompt: Prompt
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.txt"))


def resolve_prompt(spec: str | None) -> Prompt:
    """A built-in by name, or a prompt file by path."""
    spec = spec or DEFAULT_PROMPT
    builtin = BUILTIN_DIR / f"{spec}.txt"
    if "/" not in spec and "\\" not in spec and builtin.is_file():
        return parse_prompt_text(builtin.read_text(encoding="utf-8"), spec, origin=str(builtin))
    path = Path(spec).expanduser()
    if path.is_file():
        return parse_prompt_text(path.read_text(encoding="utf-8"), f"file:{path}", origin=str(path))
    raise BackendError(f"--qsm-prompt {spec!r} is neither a built-in prompt "
                       f"({', '.join(builtin_names())}) nor an existing prompt file")


def parse_prompt_text(text: str, prompt_id: str, *, origin: str) -> Prompt:
    head, sep, user = text.partition("\n---\n")
    if not sep:
        raise BackendError(f"prompt file {origin} has no '---' line between its header "
                           f"(system/speech/nonspeech) and the user text")
    fields: dict[str, str] = {}
    for number, line in enumerate(head.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, colon, value = line.partition(":")
        key = key.strip().lower()
        if not colon or key not in _KEYS:
            raise BackendError(f"prompt file {origin} line {number}: expected 'key: value' with key "
                               f"one of {', '.join(_KEYS)}, got {line!r}")
        fields[key] = value.strip()
    missing = [k for k in _KEYS if not fields.get(k)]
    if missing:
        raise BackendError(f"prompt file {origin} lacks {', '.join(missing)}; every prompt states its "
                           f"system prompt and both answers explicitly")
    if fields["speech"].casefold() == fields["nonspeech"].casefold():
        raise BackendError(f"prompt file {origin}: the speech and nonspeech answers are the same word")
    user = user.strip("\n")
    if not user.strip():
        raise BackendError(f"prompt file {origin} has no user text after '---'")
    return Prompt(prompt_id=prompt_id, system=fields["system"], user=user,
                  speech_answer=fields["speech"], nonspeech_answer=fields["nonspeech"])


def render(prompt: Prompt, processor, profile=None) -> RenderedPrompt:
    """The prompt text with exactly one audio placeholder, before the processor expands it per clip.

    Chat profiles go through the checkpoint's own chat template with the explicit system turn;
    a raw profile (the base Qwen2-Audio) is its audio prefix followed by the question, with no
    template and no system prompt, as that model was trained; a mistral profile (Voxtral) is the
    chat as mistral-common encodes it, without a system turn where the family refuses one.
    """
    from qsm_eval.backends.audio_llm.profiles import QWEN2_AUDIO

    profile = profile or QWEN2_AUDIO
    placeholder = profile.audio_token
    if profile.prompt_format == "raw":
        text = profile.raw_prefix + prompt.user
    elif profile.prompt_format == "mistral":
        text = _encoded_chat_text(prompt, processor, profile)
    else:
        text = processor.apply_chat_template(prompt.messages(), add_generation_prompt=True, tokenize=False)
        if isinstance(text, list):
            text = text[0]
    if profile.system_turn and profile.prompt_format != "raw" and prompt.system not in text:
        raise BackendError(f"the chat template dropped the system prompt of {prompt.prompt_id}")
    if text.count(placeholder) != 1:
        raise BackendError(f"the prompt text rendered {text.count(placeholder)} {placeholder} slots for "
                           f"prompt {prompt.prompt_id} ({profile.name}); expected exactly one")
    return RenderedPrompt(prompt=prompt, text=text)


def _encoded_chat_text(prompt: Prompt, processor, profile) -> str:
    """The text of a chat that only its tokenizer encodes (mistral-common takes no template):
    the chat encoded with a one-sample clip, decoded with its special tokens, the clip's run
    of audio tokens shown as one placeholder."""
    import re

    import numpy as np

    from qsm_eval.audio import wav_base64

    chat = prompt.messages(audio={"base64": wav_base64(np.zeros(1, dtype=np.float32))},
                           system_turn=profile.system_turn)
    encoded = processor.apply_chat_template([chat], tokenize=True, return_dict=True, return_tensors="pt")
    text = processor.tokenizer.decode(encoded["input_ids"][0].tolist(), skip_special_tokens=False)
    token = re.escape(profile.audio_token)
    return re.sub(f"(?:{token})+", profile.audio_token, text)
