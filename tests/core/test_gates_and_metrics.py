"""Gate expressions, and the count engine they read, checked against scikit-learn (the oracle)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk

from qsm_eval.analysis import metrics
from qsm_eval.analysis.gates import Gate, GateError, evaluate_gate, evaluate_gates

M = metrics.METRICS


@pytest.fixture
def results():
    # 20 ms: speech 1/2 right, nonspeech 2/2; 100 ms: all right; one UNKNOWN at 100 ms speech
    data = [
        ("SPEECH", "SPEECH", 20, "ava"), ("SPEECH", "NONSPEECH", 20, "ava"),
        ("NONSPEECH", "NONSPEECH", 20, "esc50"), ("NONSPEECH", "NONSPEECH", 20, "esc50"),
        ("SPEECH", "SPEECH", 100, "ava"), ("SPEECH", "UNKNOWN", 100, "ava"),
        ("NONSPEECH", "NONSPEECH", 100, "esc50"), ("NONSPEECH", "SPEECH", 100, "esc50"),
    ]
    frame = pd.DataFrame(data, columns=["true_label", "pred_label", "duration_ms", "dataset"])
    frame["latency_ms"] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    frame["cache_hit"] = False
    frame["error"] = None
    return frame


def test_metrics_count_unknown_as_wrong(results):
    assert M["accuracy"](results) == 5 / 8
    # speech recall 2/4, nonspeech recall 3/4
    assert M["balanced_accuracy"](results) == pytest.approx((2 / 4 + 3 / 4) / 2)
    assert M["recall"](results) == 0.5
    assert M["precision"](results) == pytest.approx(2 / 3)
    assert M["unknown_rate"](results) == 1 / 8
    assert M["specificity"](results) == 3 / 4
    assert M["error_rate"](results) == 0.0
    assert M["median_latency_ms"](results) == 4.5
    assert M["segments_per_s"](results) == pytest.approx(8 / 0.036)


def _random(n: int, seed: int, p_unknown: float = 0.1, p_error: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = rng.choice(["SPEECH", "NONSPEECH"], n)
    pred = rng.choice(["SPEECH", "NONSPEECH", "UNKNOWN"], n, p=[(1 - p_unknown) / 2] * 2 + [p_unknown])
    error = np.where(rng.random(n) < p_error, "model raised", None)
    p = np.round(np.clip(np.where(truth == "SPEECH", 0.6, 0.4) + rng.normal(0, 0.25, n), 0, 1), 2)  # ties
    return pd.DataFrame({"true_label": truth, "pred_label": pred, "duration_ms": 20, "error": error,
                         "p_speech": p})


@pytest.mark.parametrize("seed", range(6))
def test_the_count_engine_agrees_with_scikit_learn(seed):
    """Every label and probability metric against sklearn on random answers (UNKNOWN, ties in
    p_speech), harness errors left out of what sklearn sees."""
    df = _random(300 + 37 * seed, seed, p_error=0.05 * (seed % 3))
    answers = df[df["error"].isna()]
    y, yhat = answers["true_label"] == "SPEECH", answers["pred_label"] == "SPEECH"
    labels = dict(y_true=answers["true_label"], y_pred=answers["pred_label"])
    expected = {
        "accuracy": sk.accuracy_score(**labels),
        "balanced_accuracy": sk.recall_score(**labels, labels=["SPEECH", "NONSPEECH"], average="macro"),
        "precision": sk.precision_score(y, yhat), "recall": sk.recall_score(y, yhat),
        "specificity": sk.recall_score(**labels, labels=["NONSPEECH"], average="macro"),
        "f1": sk.f1_score(y, yhat), "roc_auc": sk.roc_auc_score(y, answers["p_speech"]),
        "brier": sk.brier_score_loss(y, answers["p_speech"]),
        "unknown_rate": float((answers["pred_label"] == "UNKNOWN").mean()),
        "error_rate": float(df["error"].notna().mean()),
    }
    for name, value in expected.items():
        assert M[name](df) == pytest.approx(value, abs=1e-12), name


def test_roc_points_match_scikit_learn():
    df = _random(400, 9)
    y = df["true_label"] == "SPEECH"
    fpr, tpr = metrics.roc_points(y, df["p_speech"])
    sk_fpr, sk_tpr, _ = sk.roc_curve(y, df["p_speech"], drop_intermediate=False)
    assert np.allclose(fpr, sk_fpr) and np.allclose(tpr, sk_tpr)


def test_harness_errors_are_not_answers(results):
    broken = results.copy()
    broken.loc[[0, 2], "error"] = "audio unreadable"        # a right SPEECH and a right NONSPEECH
    rest = results.drop(index=[0, 2])
    assert M["error_rate"](broken) == 2 / 8
    for name in ("accuracy", "balanced_accuracy", "recall", "precision", "unknown_rate"):
        assert M[name](broken) == M[name](rest), name
    assert M["n"](broken) == 8   # cases, errors included


def test_undefined_is_nan_never_zero(results):
    nonspeech_only = results[results["true_label"] == "NONSPEECH"]
    quiet = nonspeech_only[nonspeech_only["pred_label"] == "NONSPEECH"]
    assert math.isnan(M["precision"](quiet)) and math.isnan(M["f1"](quiet))
    # one false alarm: precision is a real 0, but recall, and so F1, are undefined
    assert M["precision"](nonspeech_only) == 0.0
    assert math.isnan(M["recall"](nonspeech_only)) and math.isnan(M["f1"](nonspeech_only))
    speech_only = results[results["true_label"] == "SPEECH"]
    assert math.isnan(M["specificity"](speech_only))
    assert M["f1"](speech_only) == pytest.approx(2 * 2 / (2 * 2 + 0 + 2))


@pytest.mark.parametrize("expression, metric, op, bound, subset, min_n", [
    ("balanced_accuracy>=0.85", "balanced_accuracy", ">=", 0.85, (), 1),
    (" recall[dataset=ava, duration=20ms] > 0.5 ", "recall", ">", 0.5, (("dataset", "ava"), ("duration", "20ms")), 1),
    ("accuracy[label=nonspeech,min_n=50]<=1", "accuracy", "<=", 1.0, (("label", "nonspeech"),), 50),
    ("error_rate<=0.01", "error_rate", "<=", 0.01, (), 1),
    ("dt75_ms<=60", "dt75_ms", "<=", 60.0, (), 1),
])
def test_parse(expression, metric, op, bound, subset, min_n):
    gate = Gate.parse(expression)
    assert (gate.metric, gate.op, gate.bound, gate.subset, gate.min_n) == (metric, op, bound, subset, min_n)


@pytest.mark.parametrize("expression, message", [
    ("balanced_accuracy", "is not of the form"),
    ("bal_acc>=0.9", "unknown metric 'bal_acc'"),
    ("accuracy[colour=red]>=0.9", "unknown subset key 'colour'"),
    ("accuracy[dataset]>=0.9", "is not key=value"),
    ("accuracy[min_n=many]>=0.9", "min_n='many' is not an integer"),
    ("accuracy>=0.9.1", "is not a number"),
    ("recall[duration=short]>=0.5", "duration='short' is not a duration in whole ms"),
])
def test_parse_errors_name_the_problem(expression, message):
    with pytest.raises(GateError, match=message.replace("[", r"\[")):
        Gate.parse(expression)


def test_gate_verdicts(results):
    passed, failed, by_subset, guarded = evaluate_gates(
        ["accuracy>=0.6", "balanced_accuracy>=0.9", "accuracy[dataset=esc50,duration=100ms]==0.5",
         "accuracy[label=speech,min_n=5]>=0"], results)
    assert passed.passed and passed.value == 5 / 8 and passed.n == 8
    assert not failed.passed and "balanced_accuracy = 0.625 (bound >= 0.9, n=8)" in failed.message
    assert by_subset.passed and by_subset.n == 2
    assert not guarded.passed and "only 4 case(s) in the subset, need at least 5" in guarded.message


def test_a_metric_that_cannot_be_computed_fails(results):
    verdict = evaluate_gate(Gate.parse("recall[label=nonspeech]>=0"), results)
    assert not verdict.passed and "cannot be computed" in verdict.message
