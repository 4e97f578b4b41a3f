"""How a backend with a probability of SPEECH turns it into a label: one rule for all."""

from __future__ import annotations

from qsm_eval.options import Option, is_probability


def threshold_option(name: str, help: str) -> Option:
    """A decision threshold option: a probability, 0.5 by default."""
    return Option(name, float, 0.5, help, check=is_probability, allowed="a probability from 0 to 1")


def label_from_probability(p_speech: float, threshold: float) -> tuple[str, float]:
    """The decision and its confidence for a probability of SPEECH: SPEECH at or above the
    threshold."""
    if p_speech >= threshold:
        return "SPEECH", p_speech
    return "NONSPEECH", 1.0 - p_speech
