"""The strict parser's regression corpus: tricky answers and what each must give."""

from __future__ import annotations

import pytest

from qsm_eval.backends.audio_llm.parsing import parse_answer
from qsm_eval.backends.audio_llm.prompts import resolve_prompt

LABELS = resolve_prompt("labels")
AB = resolve_prompt("ab")

# (answer, prompt, label, parse_status). A lenient parser gets the marked ones wrong.
CORPUS = [
    ("Speech with background noise", LABELS, "SPEECH", "label_word"),
    ("Announcer speaking", LABELS, "UNKNOWN", "no_match"),       # "speak" is not a label word
    ("using a power saw", AB, "UNKNOWN", "no_match"),            # the article "a" is not option A
    ("NON-SPEECH.", LABELS, "NONSPEECH", "label_word"),          # contains "SPEECH", means NONSPEECH
    ("B", AB, "NONSPEECH", "option_letter"),
    ("Answer: B", AB, "UNKNOWN", "no_match"),                    # a letter only when it is the answer
    ("B", LABELS, "UNKNOWN", "no_match"),                        # no letters in a word prompt
    ("A.", AB, "SPEECH", "option_letter"),
    ("(B)", AB, "NONSPEECH", "option_letter"),
    ("b", AB, "NONSPEECH", "option_letter"),
    ("A dog barking", AB, "UNKNOWN", "no_match"),
    ("SPEECH", LABELS, "SPEECH", "label_word"),
    ("  speech\n", LABELS, "SPEECH", "label_word"),
    ("NONSPEECH", LABELS, "NONSPEECH", "label_word"),
    ("Non speech", LABELS, "NONSPEECH", "label_word"),
    ("nonspeech, just music", LABELS, "NONSPEECH", "label_word"),
    ("The audio contains speech.", LABELS, "SPEECH", "label_word"),
    ("No speech detected", LABELS, "UNKNOWN", "negated"),        # "speech" is there, the meaning is not
    ("There is no human speech in the clip.", LABELS, "UNKNOWN", "negated"),
    ("This is not speech", LABELS, "UNKNOWN", "negated"),
    ("B) no speech", AB, "UNKNOWN", "negated"),
    ("speech and nonspeech", LABELS, "UNKNOWN", "ambiguous"),
    ("SPEECH or NON-SPEECH", LABELS, "UNKNOWN", "ambiguous"),
    ("speeches", LABELS, "UNKNOWN", "no_match"),                 # not the whole word
    ("freespeech", LABELS, "UNKNOWN", "no_match"),
    ("", LABELS, "UNKNOWN", "empty"),
    (" ... ", AB, "UNKNOWN", "empty"),
]


@pytest.mark.parametrize("answer, prompt, label, status", CORPUS,
                         ids=[f"{c[1].prompt_id}:{c[0]!r}" for c in CORPUS])
def test_regression_corpus(answer, prompt, label, status):
    assert parse_answer(answer, prompt) == (label, status)


def test_prompt_answer_words_count_as_labels(tmp_path):
    prompt_file = tmp_path / "yes_no.txt"
    prompt_file.write_text("system: Be brief.\nspeech: YES\nnonspeech: NO\n---\nIs someone talking?\n")
    prompt = resolve_prompt(str(prompt_file))
    assert parse_answer("Yes.", prompt) == ("SPEECH", "label_word")
    assert parse_answer("no", prompt) == ("NONSPEECH", "label_word")
    assert parse_answer("Yes and no", prompt) == ("UNKNOWN", "ambiguous")
