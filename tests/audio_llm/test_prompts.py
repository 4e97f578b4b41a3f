"""Prompts: built-ins and files, the explicit system turn, and the rendered text's hash."""

from __future__ import annotations

import hashlib

import pytest

from qsm_eval.backends.base import BackendError
from qsm_eval.backends.audio_llm.prompts import builtin_names, render, resolve_prompt


def test_builtins_are_a_labels_and_an_ab_prompt():
    assert {"labels", "ab"} <= set(builtin_names())
    labels, ab = resolve_prompt("labels"), resolve_prompt("ab")
    assert labels.answers == {"SPEECH": "SPEECH", "NONSPEECH": "NONSPEECH"}
    assert ab.answers == {"SPEECH": "A", "NONSPEECH": "B"}
    assert labels.system and ab.system


def test_rendered_chat_has_the_explicit_system_prompt_and_one_audio_slot(make_backend):
    backend = make_backend(prompt="ab")
    text = backend.rendered.text
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert text.count("<|AUDIO|>") == 1 and "<|audio_bos|><|AUDIO|><|audio_eos|>" in text
    assert "A) speech" in text and text.endswith("<|im_start|>assistant\n")
    assert backend.prompt_sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert backend.prompt_id == "ab"


def test_user_prompt_file_sets_system_text_and_changes_the_hash(make_backend, tmp_path):
    prompt_file = tmp_path / "mine.txt"
    prompt_file.write_text("# my prompt\nsystem: You classify sounds.\nspeech: SPEECH\n"
                           "nonspeech: NONSPEECH\n---\nSpeech or not? Say SPEECH or NONSPEECH.\n")
    mine = make_backend(prompt=str(prompt_file))
    default = make_backend()
    assert mine.prompt_id == f"file:{prompt_file}"
    assert "<|im_start|>system\nYou classify sounds.<|im_end|>" in mine.rendered.text
    assert "You are a helpful assistant." not in mine.rendered.text  # no template default slipped in
    assert mine.prompt_sha256 != default.prompt_sha256
    assert render(mine.prompt, mine.processor).sha256 == mine.prompt_sha256  # stable


@pytest.mark.parametrize("content, message", [
    ("speech: SPEECH\nnonspeech: NONSPEECH\n---\nQ?\n", "lacks system"),
    ("system: S\nspeech: SPEECH\nnonspeech: NONSPEECH\nQ?\n", "no '---' line"),
    ("system: S\nanswer: X\n---\nQ?\n", "line 2"),
    ("system: S\nspeech: A\nnonspeech: a\n---\nQ?\n", "same word"),
])
def test_bad_prompt_files_are_refused_with_the_file_named(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(BackendError, match=message) as info:
        resolve_prompt(str(path))
    assert str(path) in str(info.value)


def test_unknown_prompt_names_the_builtins():
    with pytest.raises(BackendError, match="labels"):
        resolve_prompt("no-such-prompt")
