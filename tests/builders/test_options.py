import pytest

from qsm_eval.builders import ava


@pytest.mark.parametrize("extra, message", [
    (["--durations", "0"], "--durations: 0 ms is not a positive duration"),
    (["--per-class", "0"], "--per-class must be at least 1"),
    (["--max-per-region", "0"], "--max-per-region must be at least 1"),
    (["--margin", "-1"], "--margin must be 0 or more seconds"),
    (["--splits", "dev=0.5", "test=0.6"], "the fractions sum to 1.1"),
    (["--splits", "a=0.25", "b=0.25", "c=0.25", "d=0.25", "e=0"], "0 < fraction <= 1"),
])
def test_bad_common_options_are_one_line_errors(extra, message, ava_corpus, build, tmp_path, capsys):
    labels, audio = ava_corpus
    assert build(ava, ["--labels", labels, "--audio-dir", audio, "--out", tmp_path / "o", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"qsm-eval build ava: error: {err.split('error: ', 1)[1]}" and message in err
    assert not (tmp_path / "o").exists()


def test_more_splits_than_recordings_is_refused(ava_corpus, build, tmp_path, capsys):
    labels, audio = ava_corpus
    splits = [f"s{i}=0.2" for i in range(5)]
    assert build(ava, ["--labels", labels, "--audio-dir", audio, "--out", tmp_path / "o",
                       "--splits", *splits]) == 2
    assert "4 recording(s) with usable regions are too few" in capsys.readouterr().err


def test_an_unwritable_out_is_a_one_line_error(ava_corpus, build, tmp_path, capsys):
    labels, audio = ava_corpus
    (tmp_path / "file.txt").write_text("")
    assert build(ava, ["--labels", labels, "--audio-dir", audio, "--out", tmp_path / "file.txt" / "o",
                       "--per-class", 1, "--durations", 20]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qsm-eval build ava: error: ") and "file.txt" in err
    assert len(err.splitlines()) == 1
