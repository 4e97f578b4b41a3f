"""Results: schema, journal, recovery of an interrupted run, run.json."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from qsm_eval.results import COLUMNS, JOURNAL_FILE, ResultWriter, RunManifest, load_results


def rows(n):
    return [{"segment_id": i, "true_label": "SPEECH", "pred_label": "NONSPEECH" if i % 2 else "SPEECH",
             "p_speech": 0.1 * i, "duration_ms": 20, "dataset": "d", "raw_output": f"r{i}",
             "cache_hit": False} for i in range(n)]


def test_finalize_writes_the_schema_and_drops_the_journal(tmp_path):
    writer = ResultWriter(tmp_path)
    for r in rows(3):
        writer.append(r)
    path = writer.finalize()
    table = pq.read_table(path)
    assert tuple(table.schema.names) == COLUMNS
    assert table.column("segment_id").to_pylist() == [0, 1, 2]
    assert table.column("model").to_pylist() == [None, None, None]  # absent keys are nulls
    assert not (tmp_path / JOURNAL_FILE).exists()


def test_a_killed_run_is_recovered_from_its_journal(tmp_path):
    writer = ResultWriter(tmp_path)
    for r in rows(4):
        writer.append(r)
    # no finalize: the process died; the last line may be cut short
    with open(tmp_path / JOURNAL_FILE, "a") as fh:
        fh.write('{"segment_id": 99, "true_la')
    frame = load_results(tmp_path)
    assert frame["segment_id"].tolist() == [0, 1, 2, 3]
    assert list(frame.columns) == list(COLUMNS)


def test_a_new_run_in_the_same_directory_starts_a_new_journal(tmp_path):
    (tmp_path / JOURNAL_FILE).write_text(json.dumps(rows(1)[0]) + "\n")
    writer = ResultWriter(tmp_path)
    writer.append(rows(2)[1])
    writer.finalize()
    assert load_results(tmp_path)["segment_id"].tolist() == [1]


def test_load_results_names_a_directory_that_is_no_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="is this a qsm-eval run directory"):
        load_results(tmp_path)


def test_manifest_round_trip(tmp_path):
    manifest = RunManifest(run_id="r1", model="silero-vad", options={"limit": 2})
    manifest.write(tmp_path)
    again = RunManifest.read(tmp_path)
    assert (again.run_id, again.model, again.options, again.status) == ("r1", "silero-vad", {"limit": 2}, "running")
    assert "torch" in again.versions and "python" in again.versions
