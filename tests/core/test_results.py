"""Results: schema, journal, recovery of an interrupted run, run.json."""

from __future__ import annotations

import json
from dataclasses import fields

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qsm_eval.backends.base import BackendIdentity, Prediction
from qsm_eval.results import (COLUMNS, JOURNAL_FILE, SCHEMA, Result, ResultWriter, RunManifest,
                              load_results, rows_to_table)
from qsm_eval.runner import CaseOutcome
from qsm_eval.segments import SegmentSet


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


# The schema of TEAM decision 5: the documented columns, then what analysis groups by.
DOCUMENTED = ["segment_id", "true_label", "pred_label", "confidence", "latency_ms", "duration_ms",
              "dataset", "condition", "raw_output", "p_speech", "source_id", "split", "audio_path",
              "model", "backend", "prompt_id", "prompt_sha256", "parse_status", "n_audio_tokens",
              "padding", "batch_size", "cache_hit", "error", "category", "snr_db", "noise_source",
              "answer_mass", "segment_set", "set_sha256", "case_id"]


def test_result_fields_are_the_schema_in_order():
    assert [f.name for f in fields(Result)] == DOCUMENTED == list(COLUMNS) == SCHEMA.names
    assert SCHEMA.field("segment_id").type == pa.int64() and SCHEMA.field("p_speech").type == pa.float64()
    assert SCHEMA.field("cache_hit").type == pa.bool_() and SCHEMA.field("raw_output").type == pa.string()


def test_a_result_is_built_from_segment_outcome_and_identity_and_round_trips(write_set, tmp_path):
    directory = write_set([dict(audio_path="a/0.wav", label="SPEECH", duration_ms=40, dataset="ds",
                                condition="clean", source_id="rec1")])
    segment = next(iter(SegmentSet.load(directory)))
    prediction = Prediction("NONSPEECH", 0.25, raw_output="no", confidence=0.75, n_audio_tokens=1,
                            padding="zero-pad-end:512", answer_mass=0.9)
    identity = BackendIdentity(backend="audio-llm", model="m/1", prompt_id="p1", prompt_sha256="ab" * 32)
    result = Result.from_outcome(segment, CaseOutcome(prediction, 3.5, 8), identity, "case-0", "cd" * 32)
    row = result.to_dict()
    assert (row["true_label"], row["pred_label"], row["p_speech"], row["batch_size"]) == ("SPEECH", "NONSPEECH", 0.25, 8)
    assert (row["model"], row["backend"], row["prompt_id"]) == ("m/1", "audio-llm", "p1")
    assert (row["answer_mass"], row["set_sha256"], row["case_id"]) == (0.9, "cd" * 32, "case-0")
    assert (row["condition"], row["source_id"], row["segment_set"]) == ("clean", "rec1", str(directory))
    assert Result.from_dict(row) == result
    assert rows_to_table([row]).to_pylist() == [row]


def test_a_row_that_cannot_be_stored_costs_only_itself(tmp_path):
    writer = ResultWriter(tmp_path)
    good = rows(3)
    bad = dict(rows(1)[0], segment_id="not a number", case_id="broken-case")
    for r in (good[0], bad, good[1], good[2]):
        writer.append(r)
    writer.finalize()
    assert pq.read_table(tmp_path / "results.parquet").column("segment_id").to_pylist() == [0, 1, 2]
    assert len(writer.refused) == 1 and "broken-case" in writer.refused[0]
