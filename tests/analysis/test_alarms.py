"""Alarms: each fires on the run that deserves it, and a healthy run raises none."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qsm_eval.analysis.alarms import check_alarms


def _run(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """A healthy run: both classes, 80% right, varied raw outputs, audio tokens present."""
    rng = np.random.default_rng(seed)
    truth = np.array(["SPEECH", "NONSPEECH"] * (n // 2))
    right = rng.random(n) < 0.8
    pred = np.where(right, truth, np.where(truth == "SPEECH", "NONSPEECH", "SPEECH"))
    return pd.DataFrame({"true_label": truth, "pred_label": pred, "duration_ms": [20, 20, 100, 100] * (n // 4),
                         "dataset": "d", "raw_output": [f"{p} ({i})" for i, p in enumerate(pred)],
                         "n_audio_tokens": 5})


def kinds(df: pd.DataFrame) -> set[str]:
    return {a.kind for a in check_alarms(df)}


def test_a_healthy_run_raises_no_alarm():
    assert check_alarms(_run()) == []


def test_below_chance():
    df = _run()
    df["pred_label"] = np.where(df["pred_label"] == "SPEECH", "NONSPEECH", "SPEECH")  # labels swapped
    alarms = check_alarms(df)
    assert "below_chance" in {a.kind for a in alarms}
    assert any("0.2" in a.message for a in alarms if a.kind == "below_chance")


def test_one_class_always_chosen_overall_and_per_duration():
    df = _run()
    df["pred_label"] = "SPEECH"
    assert {"one_class"} <= kinds(df)
    short_only = _run()
    short_only.loc[short_only["duration_ms"] == 20, "pred_label"] = "NONSPEECH"
    scopes = {a.scope for a in check_alarms(short_only) if a.kind == "one_class"}
    assert scopes == {"duration=20ms"}


def test_every_raw_output_identical():
    df = _run().assign(raw_output="I cannot hear anything.")
    assert "identical_outputs" in kinds(df)


def test_zero_audio_tokens_names_the_durations():
    df = _run()
    df.loc[df["duration_ms"] == 20, "n_audio_tokens"] = 0
    (alarm,) = [a for a in check_alarms(df) if a.kind == "zero_audio_tokens"]
    assert "20 ms: 20" in alarm.message and "100 ms" not in alarm.message


def test_low_answer_mass():
    df = _run().assign(answer_mass=0.9)
    assert "low_answer_mass" not in kinds(df)
    df["answer_mass"] = np.r_[np.full(30, 0.01), np.full(10, 0.9)]
    (alarm,) = [a for a in check_alarms(df) if a.kind == "low_answer_mass"]
    assert alarm.scope == "all" and "30 of 40 cases" in alarm.message
    assert "low_answer_mass" not in kinds(_run().assign(answer_mass=None))   # VADs have none


def test_single_class_data_is_not_called_one_class():
    df = _run()
    df = df[df["true_label"] == "SPEECH"].assign(pred_label="SPEECH")
    assert "one_class" not in kinds(df)


def test_below_chance_is_a_binomial_test_not_the_point_estimate():
    """A model at chance scores below 0.5 half the time; the alarm fires for it rarely (at most
    the test's 1%), and for a model truly below chance (balanced accuracy 0.35) every time."""
    from qsm_eval.analysis.alarms import BELOW_CHANCE_ALPHA, below_chance_p
    from qsm_eval.analysis.outcomes import outcomes

    rng = np.random.default_rng(11)
    truth = np.array(["SPEECH", "NONSPEECH"] * 100)
    wrong = np.where(truth == "SPEECH", "NONSPEECH", "SPEECH")

    def p(p_right: float) -> float:
        pred = np.where(rng.random(len(truth)) < p_right, truth, wrong)
        return below_chance_p(outcomes(pd.DataFrame({"true_label": truth, "pred_label": pred, "duration_ms": 20})))

    at_chance = [p(0.5) for _ in range(300)]
    assert np.mean(np.array(at_chance) < BELOW_CHANCE_ALPHA) <= 0.02
    assert all(p(0.35) < BELOW_CHANCE_ALPHA for _ in range(100))
