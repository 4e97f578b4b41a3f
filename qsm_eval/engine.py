"""The run engine: everything a qsm-eval run does, with no pytest in it.

The pytest plugin (plugin.py) is glue over this module, the way pytest-cov is glue over its
engine. Each pytest process gets one engine, its role picked once (``start_engine``):

  Central         a plain run: answers the cases and records the run
  DistWorker      an xdist worker: answers the cases it is sent; each row travels to the
                  controller on its test report
  DistController  the xdist controller: records the rows the reports carry

Answering (a model, a runner, look-ahead) is an ``Answerer``; recording (the writer,
run.json, gates, summary) a ``Recorder``. A recorder starts the run on the first eval
report it sees, so a session without eval cases writes and prints nothing.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import warnings
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from qsm_eval import config as qsm_config
from qsm_eval.analysis.gates import Gate, evaluate_gate
from qsm_eval.backends import BackendError, backend_class, create_backend

# Loaded in every pytest process that has qsm-eval installed: the data stack (pandas,
# pyarrow, soundfile) is imported on first use, never here.
if TYPE_CHECKING:
    from qsm_eval.results import Result
    from qsm_eval.segments import Segment, SegmentSet

# The ids eval cases get (see case_ids): how the xdist controller, which collects nothing
# itself, tells an eval session from any other.
CASE_ID = re.compile(r"\[(invalid-set-[^\]]*|([^\]]*-)?(speech|nonspeech)-\d+ms-\d+)\]$")


class Terminated(KeyboardInterrupt):
    """SIGTERM (timeout, CI runners, schedulers), handled as Ctrl-C is: the run stops, and
    the parquet, the summary and run.json keep what was answered."""


def stop_on_sigterm() -> Callable[[], None]:
    """Make SIGTERM raise Terminated in this process; returns what restores the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signal handlers can only be set from the main thread

    def terminate(signum, frame):
        raise Terminated("SIGTERM received")

    previous = signal.signal(signal.SIGTERM, terminate)
    return lambda: signal.signal(signal.SIGTERM, previous)


class MissingAudioWarning(UserWarning):
    """A segment set names audio files it does not hold: those cases fail, the rest run."""


class InvalidSegmentSet:
    """Stands in for the cases of a set that cannot be loaded: one failing case says why."""

    def __init__(self, pattern: str, error: str):
        self.pattern = pattern
        self.error = error


def marker_name(text: str) -> str:
    return re.sub(r"\W+", "_", str(text).strip().lower()).strip("_") or "unnamed"


def case_ids(cases: list) -> list[str]:
    """The pytest id of every case: dataset, label, duration and segment id (prefixed by the
    set's directory name when several sets run)."""
    multi_set = len({c.set_dir for c in cases if not isinstance(c, InvalidSegmentSet)}) > 1
    ids = []
    for case in cases:
        if isinstance(case, InvalidSegmentSet):
            ids.append(f"invalid-set-{marker_name(Path(case.pattern).name)}")
            continue
        prefix = f"{marker_name(Path(case.set_dir).name)}-" if multi_set else ""
        ids.append(f"{prefix}{case.dataset}-{case.label.lower()}-{case.duration_ms}ms-{case.segment_id}")
    return ids


def case_marks(segment: Segment) -> list[str]:
    """The marks of a case: its dataset (prefixed, so that a dataset named skip, xfail or
    speech never becomes pytest's own mark or a label mark), its label and its duration."""
    return [f"dataset_{marker_name(segment.dataset)}", segment.label.lower(), f"dur_{segment.duration_ms}ms"]


def judge(segment: Segment, prediction, strict: bool) -> tuple[str | None, str | None]:
    """(why the case fails, or None; the MISS it shows, or None). A wrong answer is a MISS,
    a failure only when ``strict``; no answer at all is always a failure."""
    if prediction.error is not None:
        return f"no answer for {segment.path}: {prediction.error}", None
    if prediction.label == segment.label:
        return None, None
    p_speech = "n/a" if prediction.p_speech is None else f"{prediction.p_speech:.3f}"
    miss = (f"MISS {segment.path.name}: expected {segment.label}, got {prediction.label} "
            f"(p_speech={p_speech}, raw={prediction.raw_output[:80]!r})")
    return (miss, None) if strict else (None, miss)


def within_limit(is_case: list[bool], limit: int | None) -> list[bool]:
    """--qsm-limit: which items to keep, the first ``limit`` eval cases and every other item."""
    keep, seen = [], 0
    for case in is_case:
        seen += case
        keep.append(not case or limit is None or seen <= limit)
    return keep


def resolve_settings(cli: dict[str, Any], rootpath: Path) -> dict[str, Any]:
    """The run's settings: ``cli`` (name -> raw value or None) over [tool.qsm_eval]."""
    pyproject = Path(rootpath) / "pyproject.toml"
    return qsm_config.resolve_settings(cli, qsm_config.read_tool_table(pyproject), pyproject.parent)


def setting_names() -> list[str]:
    return [s.name for s in qsm_config.CORE_SETTINGS] + [o.name for o in qsm_config.backend_options()]


class Answerer:
    """One model replica: the backend, its runner and cache, loaded on the first case."""

    def __init__(self, settings: dict, worker_index: int | None = None, worker_count: int | None = None):
        self.settings = settings
        self.worker = (worker_index, worker_count)
        self.backend = None
        self.runner = None
        self.identity = None
        self.load_s: float | None = None
        self.load_error: BackendError | None = None

    def load(self):
        if self.load_error is not None:
            raise self.load_error  # once is enough: every later case fails with the same line
        if self.backend is None:
            from qsm_eval.cache import PredictionCache
            from qsm_eval.runner import Runner

            settings = qsm_config.backend_settings(self.settings)
            # Under xdist each worker loads its own model: its index lets a backend put
            # replica k on GPU k (mod the GPUs present).
            settings["worker_index"], settings["worker_count"] = self.worker
            started = time.perf_counter()
            try:
                self.backend = create_backend(settings["model"], settings)
            except BackendError as exc:
                self.load_error = exc
                raise
            self.load_s = time.perf_counter() - started
            self.identity = self.backend.identity()
            cache = PredictionCache(self.settings["cache"]) if self.settings["cache"] else None
            self.runner = Runner(self.backend, self.settings["batch_size"], cache=cache,
                                 bucket_window=self.bucket_window(), overlap=self.overlap())
        return self.backend

    def bucket_window(self) -> int:
        """Run order when the run stops at a failure (-x, --maxfail): a batch bucketed from
        several batches ahead would be work lost at the stop."""
        return 1 if self.settings.get("maxfail") else self.settings["bucket_window"]

    def overlap(self) -> bool:
        """--qsm-overlap auto: on unless the model keeps every CPU core busy itself, where the
        preparation thread would only take cores from it (measured: 0.63x on 2 cores)."""
        if self.settings["overlap"] != "auto":
            return self.settings["overlap"]
        return self.backend.cpu_threads() < (os.cpu_count() or 1)

    def answer(self, segment: Segment, upcoming: Iterator[Segment], case_id: str,
               set_sha256: str | None):
        """The prediction for ``segment`` and its result row."""
        from qsm_eval.results import Result

        self.load()
        outcome = self.runner.predict(segment, upcoming)
        return outcome.prediction, Result.from_outcome(segment, outcome, self.identity, case_id, set_sha256)

    def describe(self) -> dict:
        if self.backend is None:
            return {}
        info = dict(self.backend.describe())
        info["runner"] = {k: round(v, 6) if isinstance(v, float) else v for k, v in self.runner.stats.items()}
        info["runner"].update(self.runner.settings(), overlap_setting=self.settings["overlap"],
                              load_s=round(self.load_s, 6))
        timings = getattr(self.backend, "timings", None)
        if callable(timings):
            info["timings"] = timings()
        return info

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
        if self.backend is not None:
            self.backend.close()


class Recorder:
    """The run's outputs: the results writer, run.json, the gates' verdicts, the summary."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.writer = None
        self.manifest = None
        self.verdicts: list = []
        self.workers: list[dict] = []   # under xdist: what every worker's backend reported
        self.notes: list[str] = []      # what the terminal must say besides the summary
        self._frame = None

    @property
    def started(self) -> bool:
        return self.writer is not None

    def start(self, expected: int | None) -> None:
        from qsm_eval.results import ResultWriter, RunManifest

        from qsm_eval.results import clear_outputs

        engine = self.engine
        engine.load_cases(warn=False)  # on the xdist controller: only to record what was evaluated
        # A reused --qsm-out: an older run's outputs must never pass for this run's.
        replaced = clear_outputs(engine.run_dir)
        if replaced:
            self.notes.append(f"--qsm-out {engine.run_dir} held an earlier run ({', '.join(replaced)}): "
                              "replaced by this run")
        self.writer = ResultWriter(engine.run_dir)
        self.manifest = RunManifest(
            run_id=engine.run_id, model=engine.settings["model"], options=dict(engine.settings),
            expected_cases=expected,
            segment_sets=[s.manifest() for s in engine.sets.values()])
        self.manifest.options["argv"] = list(engine.argv)
        self.manifest.write(engine.run_dir)

    def record(self, payload: dict) -> None:
        """One eval report's payload: the planned case count and the row, if any."""
        if not self.started:
            self.start(payload.get("planned"))
        if payload.get("result") is not None:
            self.writer.append(payload["result"])

    def results_frame(self):
        """The rows as a DataFrame, converted once for the gates and the summary alike."""
        if self._frame is None or len(self._frame) != len(self.writer.rows):
            self._frame = self.writer.table().to_pandas()
        return self._frame

    def evaluate_gates(self) -> bool:
        """Evaluate every gate on the rows; True when all pass."""
        self.verdicts = [evaluate_gate(gate, self.results_frame()) for gate in self.engine.gates]
        return all(v.passed for v in self.verdicts)

    def finish(self, status: str, reason: str | None = None, backend: dict | None = None) -> None:
        if not self.started or self.manifest.status != "running":
            return
        self.writer.finalize()
        m = self.manifest
        m.status, m.reason, m.finished_at = status, reason, time.time()
        m.n_results, m.refused_rows = len(self.writer.rows), list(self.writer.refused)
        m.backend = {**self.workers[0], "workers": list(self.workers)} if self.workers else (backend or {})
        m.timings["wall_s"] = round(time.perf_counter() - self.engine.started, 3)
        m.gates = [v.to_dict() for v in self.verdicts]
        m.write(self.engine.run_dir)
        self.notes += self.writer.refused
        if status != "complete":
            self.notes.append(f"run interrupted ({reason}): {m.n_results} of {m.expected_cases} cases "
                              f"recorded in {self.engine.run_dir}")

    def summary(self, width: int, color: bool) -> list[str]:
        """The end-of-run text: gate lines only with --qsm-summary none, else the summary."""
        mode = self.engine.settings["summary"]
        notes = [f"qsm-eval: {note}" for note in self.notes]
        if mode == "none":
            return notes + [f"gate {v.message}" for v in self.verdicts]
        from qsm_eval.analysis.summary import render_summary

        text = render_summary(self.results_frame(), self.verdicts, self.engine.run_dir, width=width,
                              color=color, mode=mode)
        return notes + [text]


class Engine:
    """What every role shares: the settings, the run's id and directory, the planned cases."""

    def __init__(self, settings: dict, invocation_dir: Path, argv: list[str], run_id: str | None = None):
        self.settings = settings
        self.gates = [Gate.parse(g) for g in settings["gate"] or []]
        self.invocation_dir = Path(invocation_dir)
        self.argv = argv
        self.run_id = run_id or (f"{time.strftime('%Y%m%d-%H%M%S')}-{marker_name(settings['model'])}"
                                 f"-{os.getpid()}")
        run_dir = Path(settings["out"].replace("{run_id}", self.run_id))
        self.run_dir = run_dir if run_dir.is_absolute() else self.invocation_dir / run_dir
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise qsm_config.SettingsError(f"--qsm-out {self.run_dir} exists and is not a directory; "
                                           "name a directory for the run's results")
        if settings["cache"]:
            from qsm_eval.cache import CacheError, PredictionCache

            try:  # checked once, at start-up: an unusable cache is a usage error
                PredictionCache(settings["cache"]).close()
            except CacheError as exc:
                raise qsm_config.SettingsError(str(exc)) from None
        self.started = time.perf_counter()
        self.cases: list | None = None
        self.sets: dict[str, SegmentSet] = {}  # set directory -> the loaded set
        self.plan: list[int] = []              # session positions of the eval cases, in order
        self.expected = 0                      # eval cases selected (invalid sets included)
        self.segments: dict[int, Segment] = {}  # session position -> segment
        self.answerer: Answerer | None = None
        self.recorder: Recorder | None = None

    # --- cases ----------------------------------------------------------------------
    def load_cases(self, warn: bool = True) -> list:
        """Every case of the configured sets: Segments, or an InvalidSegmentSet per set that
        cannot be used (its one case fails, the other sets run)."""
        from qsm_eval.segments import SegmentSet, SegmentSetError, expand_set_paths

        if self.cases is not None:
            return self.cases
        metadata_file = self.settings["metadata_file"]
        self.cases = []
        for pattern in self.settings["segments"] or [str(files("qsm_eval") / "data" / "demo")]:
            try:
                dirs = expand_set_paths([pattern], root=self.invocation_dir, metadata_file=metadata_file)
            except SegmentSetError as exc:
                self.cases.append(InvalidSegmentSet(pattern, str(exc)))
                continue
            for directory in dirs:
                if str(directory) in self.sets:
                    continue  # named by two patterns: still one set, evaluated once
                try:
                    segment_set = SegmentSet.load(directory, metadata_file)
                except SegmentSetError as exc:
                    self.cases.append(InvalidSegmentSet(str(directory), str(exc)))
                    continue
                self.sets[str(directory)] = segment_set
                self.cases.extend(segment_set)
                if segment_set.missing_audio and warn:
                    warnings.warn(MissingAudioWarning(segment_set.missing_audio_message()))
        return self.cases

    def plan_cases(self, params: list) -> None:
        """The session's items, as what each is parametrized with (None: not an eval case)."""
        self.segments = {i: p for i, p in enumerate(params)
                         if p is not None and not isinstance(p, InvalidSegmentSet)}
        self.plan = list(self.segments)
        self.expected = sum(p is not None for p in params)

    def payload(self, result: Result | None, miss: str | None, fatal: str | None = None) -> dict:
        """What an eval case's report carries to the recorder: plain values, so that xdist
        can send it (the planned case count, the result row, the MISS shown, and why the
        model cannot answer at all)."""
        return {"planned": self.expected, "result": None if result is None else result.to_dict(),
                "miss": miss, "fatal": fatal}

    # --- answering (Central, DistWorker) ----------------------------------------------
    def load_backend(self):
        return self.answerer.load()

    def answer(self, position: int, case_id: str):
        """The prediction and the result row of the case at ``position``."""
        segment = self.segments[position]
        return self.answerer.answer(segment, self.upcoming(position), case_id,
                                    self.sets[segment.set_dir].metadata_sha256)

    def upcoming(self, position: int) -> Iterator[Segment]:
        """The cases this process runs after ``position``: none unless the role knows them
        (the controller answers nothing, so it looks ahead at nothing)."""
        return iter(())

    def worker_output(self) -> dict:
        return {}

    # --- recording (Central, DistController): no-ops elsewhere ------------------------
    def record(self, payload: dict) -> str | None:
        """Record an eval report's payload; returns why the run must stop (the model cannot
        answer at all), or None. Only the recording process stops the run: on a worker,
        stopping would strand the cases the controller sent it."""
        if self.recorder is None:
            return None
        self.recorder.record(payload)
        return payload["fatal"]

    def gates_pass(self) -> bool:
        return self.recorder is None or not self.recorder.started or self.recorder.evaluate_gates()

    def finish(self, status: str, reason: str | None = None) -> None:
        if self.recorder is not None:
            backend = self.answerer.describe() if self.answerer is not None else None
            self.recorder.finish(status, reason, backend=backend)

    def summary(self, width: int, color: bool):
        """What the terminal shows at the end; None when this process recorded no run."""
        if self.recorder is None or not self.recorder.started:
            return None
        return self.recorder.summary(width, color)

    def close(self) -> None:
        if self.answerer is not None:
            self.answerer.close()


class Central(Engine):
    """A plain run: one process answers every case and records the run."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.answerer = Answerer(self.settings)
        self.recorder = Recorder(self)
        self._next = {}

    def plan_cases(self, params: list) -> None:
        super().plan_cases(params)
        self._next = {position: k for k, position in enumerate(self.plan)}

    def upcoming(self, position: int) -> Iterator[Segment]:
        """The rest of the plan, in run order, for batching ahead."""
        start = self._next.get(position, len(self.plan))
        for index in range(start + 1, len(self.plan)):
            yield self.segments[self.plan[index]]


class DistWorker(Engine):
    """An xdist worker: its model replica answers the cases it is sent.

    The controller sends eval cases in whole blocks of ``block`` consecutive session
    positions (scheduling.BlockScheduling), so the rest of the current block is known to
    run here next: that is the look-ahead, and batches stay full.
    """

    def __init__(self, settings: dict, invocation_dir: Path, argv: list[str], workerinput: dict):
        super().__init__(settings, invocation_dir, argv, run_id=workerinput["qsm_run_id"])
        self.block = int(workerinput.get("qsm_block") or 1)
        self.answerer = Answerer(settings, int(workerinput["workerid"].removeprefix("gw")),
                                 int(workerinput["workercount"]))

    def upcoming(self, position: int) -> Iterator[Segment]:
        end = (position // self.block + 1) * self.block
        for other in range(position + 1, end):
            segment = self.segments.get(other)
            if segment is not None:
                yield segment

    def worker_output(self) -> dict:
        return {"qsm_backend": self.answerer.describe()} if self.answerer.backend else {}


class DistController(Engine):
    """The xdist controller: collects nothing, loads no model, records what workers report."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.recorder = Recorder(self)
        self.block = self._block_size()

    def _block_size(self) -> int:
        """Cases sent to a worker together: the batch its runner will use."""
        if self.settings["batch_size"]:
            return int(self.settings["batch_size"])
        try:
            return max(1, int(backend_class(self.settings["model"]).max_batch_size))
        except BackendError:
            return 1  # the workers will say why the model cannot load

    def node_input(self) -> dict:
        """What every worker is told: the shared run id, and the block size of scheduling."""
        return {"qsm_run_id": self.run_id, "qsm_block": self.block}

    def add_worker(self, info: dict | None) -> None:
        if info:
            self.recorder.workers.append(info)

    def scheduler(self, config, log, dist: str):
        """xdist's scheduler for an eval session under --dist load (the default of -n)."""
        if dist != "load":
            return None
        from qsm_eval.scheduling import EvalScheduling

        return EvalScheduling(config, log, self.block, lambda nodeid: CASE_ID.search(nodeid) is not None)


def start_engine(cli: dict, rootpath: Path, invocation_dir: Path, argv: list[str],
                 workerinput: dict | None = None, distributing: bool = False,
                 maxfail: int = 0) -> Engine:
    """The engine of this process, its role picked once. ``maxfail``: pytest's (-x is 1)."""
    settings = resolve_settings(cli, rootpath)
    settings["maxfail"] = maxfail
    if workerinput is not None:
        return DistWorker(settings, invocation_dir, argv, workerinput)
    if distributing:
        return DistController(settings, invocation_dir, argv)
    return Central(settings, invocation_dir, argv)
