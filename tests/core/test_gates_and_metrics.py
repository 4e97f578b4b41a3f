"""Gate expressions and the point metrics they read."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from sklearn.metrics import f1_score

from qsm_eval.analysis import metrics
from qsm_eval.analysis.gates import Gate, GateError, evaluate_gate, evaluate_gates


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
    assert metrics.accuracy(results) == 5 / 8
    # speech recall 2/4, nonspeech recall 3/4
    assert metrics.balanced_accuracy(results) == pytest.approx((2 / 4 + 3 / 4) / 2)
    assert metrics.recall(results) == 0.5
    assert metrics.precision(results) == pytest.approx(2 / 3)
    y_true = results["true_label"] == "SPEECH"
    y_pred = results["pred_label"] == "SPEECH"
    assert metrics.f1(results) == pytest.approx(f1_score(y_true, y_pred))
    assert metrics.unknown_rate(results) == 1 / 8
    assert metrics.specificity(results) == 3 / 4
    assert metrics.median_latency_ms(results) == 4.5
    assert metrics.segments_per_s(results) == pytest.approx(8 / 0.036)


def test_recall_of_an_absent_class_is_undefined(results):
    assert math.isnan(metrics.recall(results[results["true_label"] == "NONSPEECH"]))


def test_summarize_by_duration(results):
    table = metrics.summarize(results, "duration_ms")
    assert table["group"].tolist() == [20, 100]
    assert table["accuracy"].tolist() == [0.75, 0.5]


@pytest.mark.parametrize("expression, metric, op, bound, subset, min_n", [
    ("balanced_accuracy>=0.85", "balanced_accuracy", ">=", 0.85, (), 1),
    (" recall[dataset=ava, duration=20ms] > 0.5 ", "recall", ">", 0.5, (("dataset", "ava"), ("duration", "20ms")), 1),
    ("accuracy[label=nonspeech,min_n=50]<=1", "accuracy", "<=", 1.0, (("label", "nonspeech"),), 50),
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


def test_precision_and_f1_are_undefined_not_zero_without_speech(results):
    nonspeech_only = results[results["true_label"] == "NONSPEECH"]
    quiet = nonspeech_only[nonspeech_only["pred_label"] == "NONSPEECH"]
    assert math.isnan(metrics.precision(quiet)) and math.isnan(metrics.f1(quiet))
    # one false alarm: precision is a real 0, recall undefined, F1 0 (2tp / (2tp+fp+fn))
    assert metrics.precision(nonspeech_only) == 0.0 and metrics.f1(nonspeech_only) == 0.0
