"""Alarms: signs that a run's numbers describe a broken model or harness, not a detector.

- below-chance balanced accuracy (worse than guessing: labels swapped, prompt misread), by an
  exact one-sided binomial test, not the point estimate: a model at chance scores below 0.5
  half the time;
- one class always chosen (a constant answer can still score 50% or more);
- every raw output identical (the model is not looking at the audio);
- any case with zero audio tokens (the clip never reached the model);
- a low answer mass (audio LLMs): the two answers together hold under half of the model's
  probability on most cases, so p_speech renormalises what the model barely says.

Harness errors are not answers and take no part. Each alarm is checked for the whole run and
per model and dataset; one class always chosen is also checked per duration, where a model
that only ever says NONSPEECH on short clips hides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from qsm_eval.analysis import binomial
from qsm_eval.analysis import metrics as engine
from qsm_eval.analysis.outcomes import answered, outcomes

MIN_CASES_PER_DURATION = 10  # a constant answer on fewer cases is not evidence of anything
BELOW_CHANCE_ALPHA = 0.01    # one-sided: a model at chance alarms at most 1% of the time
LOW_ANSWER_MASS = 0.5        # the level the audio-llm backend marks in raw_output too


@dataclass(frozen=True)
class Alarm:
    kind: str      # below_chance | one_class | identical_outputs | zero_audio_tokens | low_answer_mass
    scope: str     # "all", "model=...", "dataset=...", "duration=20ms"...
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


def _scopes(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    scopes = [("all", frame)]
    for column in ("model", "dataset"):
        if column in frame and frame[column].nunique(dropna=True) > 1:
            scopes += [(f"{column}={value}", group) for value, group in frame.groupby(column, sort=True)]
    return scopes


def _both_classes(frame: pd.DataFrame) -> bool:
    return bool(frame["is_speech"].any() and (~frame["is_speech"]).any())


def below_chance_p(frame: pd.DataFrame) -> float:
    """One-sided p-value of 'balanced accuracy below 0.5'. A model whose answers ignore the
    class has balanced accuracy 0.5 with a variance at most that of a proportion over
    n = 4 / (1/n_speech + 1/n_nonspeech) fair coin flips, whatever its bias; with repeated
    sources, n counts sources instead of clips (clips of one recording answer alike)."""
    totals = engine.count_columns(frame).sum(axis=0)
    ba = float(engine.label_metrics(totals)["balanced_accuracy"])
    speech = frame["is_speech"].to_numpy()
    n_s, n_n = int(speech.sum()), int((~speech).sum())
    if "source_id" in frame and frame["source_id"].notna().all() and frame["source_id"].duplicated().any():
        n_s = frame.loc[speech, "source_id"].nunique()
        n_n = frame.loc[~speech, "source_id"].nunique()
    n = round(4.0 / (1.0 / n_s + 1.0 / n_n))
    return binomial.cdf(round(ba * n), n, 0.5)


def _below_chance(scope: str, frame: pd.DataFrame) -> list[Alarm]:
    if not _both_classes(frame):
        return []
    p = below_chance_p(frame)
    if p < BELOW_CHANCE_ALPHA:
        ba = float(engine.label_metrics(engine.count_columns(frame).sum(axis=0))["balanced_accuracy"])
        return [Alarm("below_chance", scope, f"{scope}: balanced accuracy {ba:.3f} is below chance "
                      f"(0.5) on {len(frame)} cases (binomial p = {p:.2g}); are labels or the prompt's "
                      f"answer words swapped?")]
    return []


def _one_class(scope: str, frame: pd.DataFrame) -> list[Alarm]:
    if not _both_classes(frame):
        return []
    answers = frame["pred_label"].fillna("UNKNOWN").astype(str)
    if answers.nunique() == 1:
        return [Alarm("one_class", scope, f"{scope}: every one of {len(frame)} answers is "
                      f"{answers.iloc[0]}, though both classes are present")]
    return []


def _identical_outputs(scope: str, frame: pd.DataFrame) -> list[Alarm]:
    if "raw_output" not in frame:
        return []
    raw = frame["raw_output"].dropna()
    if len(raw) > 1 and raw.nunique() == 1:
        return [Alarm("identical_outputs", scope, f"{scope}: all {len(raw)} raw outputs are identical "
                      f"({raw.iloc[0][:60]!r}); the model may not be receiving the audio")]
    return []


def _zero_audio_tokens(frame: pd.DataFrame) -> list[Alarm]:
    if "n_audio_tokens" not in frame:
        return []
    zero = frame[frame["n_audio_tokens"].fillna(-1) == 0]
    if zero.empty:
        return []
    durations = ", ".join(f"{d} ms: {n}" for d, n in zero.groupby("duration_ms").size().items())
    return [Alarm("zero_audio_tokens", "all", f"{len(zero)} case(s) reached the model with zero "
                  f"audio tokens ({durations}); their answers say nothing about the audio and are "
                  f"left out of the duration thresholds; set a padding policy for clips this short")]


def _low_answer_mass(scope: str, frame: pd.DataFrame) -> list[Alarm]:
    if "answer_mass" not in frame:
        return []
    mass = pd.to_numeric(frame["answer_mass"], errors="coerce").dropna()
    if mass.empty or mass.median() >= LOW_ANSWER_MASS:
        return []
    low = int((mass < LOW_ANSWER_MASS).sum())
    return [Alarm("low_answer_mass", scope, f"{scope}: on {low} of {len(mass)} cases the two answers hold "
                  f"under {LOW_ANSWER_MASS:g} of the model's probability (median {mass.median():.3g}); "
                  f"the model is mostly saying something else: check the prompt's answer words, or "
                  f"read raw_output")]


def check_alarms(df: pd.DataFrame) -> list[Alarm]:
    """Every alarm a results frame raises, most general scope first."""
    frame = answered(outcomes(df))
    if frame.empty:
        return []
    alarms: list[Alarm] = []
    for scope, group in _scopes(frame):
        alarms += (_below_chance(scope, group) + _one_class(scope, group) + _identical_outputs(scope, group)
                   + _low_answer_mass(scope, group))
    for duration, group in frame.groupby("duration_ms", sort=True):
        if len(group) >= MIN_CASES_PER_DURATION:
            alarms += _one_class(f"duration={duration}ms", group)
    alarms += _zero_audio_tokens(frame)
    return alarms
