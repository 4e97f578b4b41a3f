"""The strict parser for generated answers: a label only when the text says it, else UNKNOWN.

Rules, in order (the first that applies decides, and parse_status names it):

- ``empty``: nothing but whitespace and punctuation.
- ``label_word``: exactly one of the label words occurs as a whole word, in any case. The
  NONSPEECH words are NONSPEECH, NON-SPEECH and NON SPEECH (and the prompt's own nonspeech
  answer word); SPEECH counts only where it is not part of one of those.
- ``negated``: a SPEECH word right after "no", "not", "without", "isn't", "absence of": the
  text may mean NONSPEECH, but that is a guess, so UNKNOWN.
- ``ambiguous``: words for both labels occur: UNKNOWN.
- ``option_letter``: for a prompt whose answers are letters, the whole answer is one of the
  letters, alone or as "B.", "(B)", "B)".
- ``no_match``: anything else ("Announcer speaking", "using a power saw", "Answer: B").
"""

from __future__ import annotations

import re

from qsm_eval.backends.audio_llm.prompts import Prompt

_NONSPEECH_WORDS = ("NONSPEECH", "NON-SPEECH", "NON SPEECH")
_NEGATIONS = r"(?:no|not|without|isn't|is not|absence of|lack of)"
_EDGE_PUNCT = " \t\r\n.,;:!?\"'`*()[]{}<>-"


def parse_answer(text: str, prompt: Prompt) -> tuple[str, str]:
    """(label, parse_status) for a generated answer under ``prompt``."""
    stripped = text.strip()
    if not stripped.strip(_EDGE_PUNCT):
        return "UNKNOWN", "empty"

    letters = _letters(prompt)
    # A prompt's own answer words count as label words, its option letters do not.
    nonspeech_words = _word_alternatives({*_NONSPEECH_WORDS, prompt.nonspeech_answer} - letters)
    speech_words = _word_alternatives({"SPEECH", prompt.speech_answer} - letters)
    nonspeech = re.compile(rf"(?<![\w-])(?:{nonspeech_words})(?![\w-])", re.IGNORECASE)
    speech = re.compile(rf"(?<![\w-])(?:{speech_words})(?![\w-])", re.IGNORECASE)

    found_nonspeech = bool(nonspeech.search(stripped))
    rest = nonspeech.sub(" ", stripped)
    speech_hits = list(speech.finditer(rest))
    if speech_hits and found_nonspeech:
        return "UNKNOWN", "ambiguous"
    if speech_hits:
        negated = re.compile(rf"\b{_NEGATIONS}\s+(?:\w+\s+)?$", re.IGNORECASE)
        if any(negated.search(rest[:hit.start()]) for hit in speech_hits):
            return "UNKNOWN", "negated"
        return "SPEECH", "label_word"
    if found_nonspeech:
        return "NONSPEECH", "label_word"

    if letters:
        core = re.fullmatch(r"\(?\s*([A-Za-z])\s*[).]?", stripped)
        if core and core.group(1).upper() in letters:
            letter = core.group(1).upper()
            return ("SPEECH" if letter == prompt.speech_answer.upper() else "NONSPEECH"), "option_letter"
    return "UNKNOWN", "no_match"


def _letters(prompt: Prompt) -> set[str]:
    """The option letters, when both answers are single letters (an A/B prompt)."""
    answers = (prompt.speech_answer, prompt.nonspeech_answer)
    if all(len(a) == 1 and a.isalpha() for a in answers):
        return {a.upper() for a in answers}
    return set()


def _word_alternatives(words: set[str]) -> str:
    # Longest first, so "NON SPEECH" wins over a shorter alternative at the same place.
    ordered = sorted((w for w in words if w), key=len, reverse=True)
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in ordered)
