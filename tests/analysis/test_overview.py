"""The Overview: which rows and strata get which curve, per-SNR curves, and the words a reader
relies on in the terminal, thresholds.csv and report.html."""

from __future__ import annotations

import math
import numpy as np
import pandas as pd
import pytest

from qsm_eval.analysis.gates import evaluate_gates
from qsm_eval.analysis.overview import Settings, analyse
from qsm_eval.analysis.psychometric import Curve, fit_psychometric
from qsm_eval.analysis.simulate import simulate_observer
from qsm_eval.analysis.summary import render_summary
from qsm_eval.cli import main

from .conftest import write_results

FAST = Settings(n_boot=100, dprime=False)


def _observer(location_ms: float, n_sources: int, seed: int, **columns) -> pd.DataFrame:
    df = simulate_observer(Curve("logistic", math.log(location_ms), 3.0, 0.02), n_sources,
                           np.random.default_rng(seed))
    return df.assign(model="m", **columns)


def _single_class(label: str, says_speech: float, seed: int) -> pd.DataFrame:
    """One class only, answered SPEECH with the same probability at every duration: a bias,
    no detection at all."""
    rng = np.random.default_rng(seed)
    durations = np.repeat([20, 40, 60, 80, 100, 200, 500, 1000], 30)
    said = np.where(rng.random(len(durations)) < says_speech, "SPEECH", "NONSPEECH")
    return pd.DataFrame({"true_label": label, "pred_label": said, "duration_ms": durations,
                         "source_id": [f"{label}{i % 30}" for i in range(len(durations))]})


def test_single_class_strata_get_rate_curves_named_as_such(tmp_path):
    """A dataset of speech alone and one of non-speech alone: no two-alternative curve (it would
    measure the bias), but a hit-rate and a correct-rejection curve; the model, holding both
    classes, keeps its two-alternative curve."""
    df = pd.concat([_single_class("SPEECH", 0.9, 1).assign(dataset="speech_only"),
                    _single_class("NONSPEECH", 0.3, 2).assign(dataset="noise_only")], ignore_index=True)
    df["model"] = "biased"
    overview = analyse(df, "run", FAST)
    assert set(overview.fits) == {"biased"}
    assert {label: fit.kind for label, fit in overview.rate_fits.items()} == {
        "biased / noise_only": "correct rejections", "biased / speech_only": "hit rate"}
    hit = overview.rate_fits["biased / speech_only"]
    assert 0.8 < hit.curve.rate(20) < 1.0 and hit.at_level[0.5] == pytest.approx(20)  # there from the start
    assert overview.rate_fits["biased / noise_only"].at_level[0.75] is None             # 0.7: never 75%
    text = render_summary(df, [], tmp_path, width=160)
    assert "hit rate" in text and "correct rejections" in text and "not reached" in text


def test_harness_errors_and_unseen_clips_are_left_out_of_the_fits():
    df = _observer(60.0, 40, 3)
    broken = df.copy()
    broken["error"] = None
    broken["n_audio_tokens"] = 5
    short = broken.index[broken["duration_ms"] == 20][:10]
    broken.loc[short, "n_audio_tokens"] = 0                   # never reached the model
    broken.loc[broken.index[broken["duration_ms"] == 1000][:10], "error"] = "model raised"
    broken.loc[broken["error"].notna(), "pred_label"] = "UNKNOWN"
    kept = broken[(broken["n_audio_tokens"] != 0) & broken["error"].isna()]
    fitted = analyse(broken, "run", FAST).fits["m"]
    expected = fit_psychometric(kept, n_boot=0)
    assert fitted.n_trials.sum() == len(kept)
    assert fitted.curve.location == pytest.approx(expected.curve.location)


def test_a_threshold_the_data_place_only_between_two_durations_is_said_so_everywhere(tmp_path, capsys):
    """A step between 40 and 60 ms: the interval warning reaches the terminal, thresholds.csv
    and report.html."""
    df = simulate_observer(Curve("logistic", math.log(50.0), 40.0, 0.0), 96, np.random.default_rng(8))
    run = tmp_path / "run"
    run.mkdir()
    write_results(df.assign(model="m", segment_id=np.arange(len(df))), run)
    assert main(["report", str(run), "--n-boot", "100", "--no-plots"]) == 0
    words = "lies between the tested durations 40 and 60 ms"
    # rich wraps a long note over the lines of its table cell
    terminal = " ".join(capsys.readouterr().out.replace("\u2502", " ").split())
    for text in (terminal, (run / "thresholds.csv").read_text(), (run / "report.html").read_text()):
        assert words in text


def test_one_curve_per_snr_and_thresholds_against_snr(tmp_path):
    """An observer whose threshold grows as the noise gets louder: a curve per SNR level, a
    DT75-against-SNR table and plot, thresholds.csv rows by SNR."""
    levels = {-5.0: 300.0, 5.0: 80.0, 15.0: 30.0}
    df = pd.concat([_observer(loc, 60, i, snr_db=snr, dataset="d") for i, (snr, loc) in enumerate(levels.items())],
                   ignore_index=True)
    df["source_id"] = df["source_id"] + "@" + df["snr_db"].astype(str)
    overview = analyse(df, "run", FAST)
    assert sorted(v for _, v in overview.snr.values()) == sorted(levels)
    dt75 = {snr: overview.fits[label].thresholds["DT75"].duration_ms for label, (_, snr) in overview.snr.items()}
    assert dt75[-5.0] > dt75[5.0] > dt75[15.0]

    run = tmp_path / "run"
    run.mkdir()
    write_results(df.assign(segment_id=np.arange(len(df))), run)
    assert main(["report", str(run), "--n-boot", "100"]) == 0
    assert (run / "snr.svg").is_file() and "Thresholds against SNR" in (run / "report.html").read_text()
    table = pd.read_csv(run / "thresholds.csv")
    assert sorted(table.loc[table["threshold"] == "DT75", "snr_db"].dropna()) == sorted(levels)
    assert "against SNR" in render_summary(df, [], tmp_path, width=160)
def _falling(n_sources: int = 200, seed: int = 4) -> pd.DataFrame:
    """Accuracy 0.95 at 20 ms falling to 0.55 at 1000 ms."""
    rng = np.random.default_rng(seed)
    durations = np.array([20, 40, 60, 80, 100, 200, 500, 1000])
    p_right = np.interp(np.log(durations), np.log([20, 1000]), [0.95, 0.55])
    rows = []
    for s in range(n_sources):
        truth = "SPEECH" if s % 2 else "NONSPEECH"
        other = "NONSPEECH" if s % 2 else "SPEECH"
        for d, p in zip(durations, p_right):
            rows.append({"true_label": truth, "pred_label": truth if rng.random() < p else other,
                         "duration_ms": int(d), "dataset": "d", "source_id": f"s{s}", "model": "m"})
    return pd.DataFrame(rows)


def _at_chance() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    df = _falling()
    return df.assign(pred_label=np.where(rng.random(len(df)) < 0.5, "SPEECH", "NONSPEECH"))


@pytest.mark.parametrize("make, gate, word", [
    (_falling, "dt50_ms<=20", "non-monotone"),     # a falling curve's DT50 (0.03 ms) must not pass
    (_at_chance, "dt75_ms<=1000", "not reached"),  # nor an extrapolated threshold of a model at chance
])
def test_the_words_users_rely_on_in_the_terminal_thresholds_csv_report_html_and_gates(tmp_path, capsys, make,
                                                                                    gate, word):
    df = make()
    (verdict,) = evaluate_gates([gate], df)
    assert not verdict.passed and word in verdict.message
    run = tmp_path / "run"
    run.mkdir()
    write_results(df.assign(segment_id=np.arange(len(df))), run)
    assert main(["report", str(run), "--n-boot", "100", "--no-plots"]) == 0
    for text in (capsys.readouterr().out, (run / "thresholds.csv").read_text(), (run / "report.html").read_text()):
        assert word in text
