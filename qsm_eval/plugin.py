"""The pytest plugin: segments become parametrized cases; answers become result rows.

Thin glue in the manner of pytest-cov: the work is done by the library (segments, runner,
results, analysis). Roles under pytest-xdist: a worker loads a model and predicts the
cases it is sent; every answer travels to the controller on its test report
(``user_properties``), so one process — the controller, or the only process of a plain
run — writes the parquet, prints the summary and evaluates the gates, once.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from qsm_eval import config as qsm_config
from qsm_eval.analysis.gates import Gate, GateError, evaluate_gate
from qsm_eval.backends import BackendError, create_backend

# This module is loaded by every pytest process that has qsm-eval installed, evals or not:
# the data stack (pandas, pyarrow, soundfile, scipy) is imported on first use instead.
if TYPE_CHECKING:
    from qsm_eval.results import ResultWriter, RunManifest
    from qsm_eval.runner import Runner
    from qsm_eval.segments import Segment, SegmentSet

RESULT_PROPERTY = "qsm_result"
MISS_PROPERTY = "qsm_miss"
SEGMENT_ARG = "qsm_segment"
SUMMARY_MODES = ("full", "tables", "none")


class MissingAudioWarning(UserWarning):
    """A segment set names audio files it does not hold: those cases fail, the rest run."""


class InvalidSegmentSet:
    """Stands in for the cases of a set that cannot be loaded: one failing case says why."""

    def __init__(self, pattern: str, error: str):
        self.pattern = pattern
        self.error = error


class EvalCase:
    """One segment under evaluation: what ``qsm_case`` gives a test."""

    def __init__(self, segment: Segment, item: pytest.Item, session: QsmSession):
        self.segment = segment
        self._item = item
        self._session = session
        self.outcome = None

    def predict(self):
        """The model's answer for this segment (batched with the cases due next)."""
        if self.outcome is None:
            self.outcome = self._session.predict(self._item, self.segment)
            row = result_row(self.segment, self.outcome, self._session.backend, self._item.name)
            self._item.user_properties.append((RESULT_PROPERTY, row))
        return self.outcome.prediction

    def check(self) -> None:
        """Pass when the answer is right; fail when no answer could be had.

        A wrong answer is a MISS: reported and counted, a failure only with --qsm-strict.
        """
        prediction = self.predict()
        if prediction.error is not None:
            pytest.fail(f"no answer for {self.segment.path}: {prediction.error}", pytrace=False)
        if prediction.label == self.segment.label:
            return
        detail = (f"MISS {self.segment.path.name}: expected {self.segment.label}, got "
                  f"{prediction.label} (p_speech={_fmt(prediction.p_speech)}, "
                  f"raw={prediction.raw_output[:80]!r})")
        if self._session.settings["strict"]:
            pytest.fail(detail, pytrace=False)
        self._item.user_properties.append((MISS_PROPERTY, detail))


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def result_row(segment: Segment, outcome, backend, case_id: str) -> dict:
    """One results.parquet row: plain Python values, so it travels on an xdist report."""
    p = outcome.prediction
    identity = backend.identity()
    return {
        "segment_id": segment.segment_id, "true_label": segment.label, "pred_label": p.label,
        "confidence": None if p.confidence is None else float(p.confidence),
        "latency_ms": None if outcome.latency_ms is None else float(outcome.latency_ms),
        "duration_ms": segment.duration_ms, "dataset": segment.dataset,
        "condition": segment.condition, "raw_output": p.raw_output,
        "p_speech": None if p.p_speech is None else float(p.p_speech),
        "source_id": segment.source_id, "split": segment.split, "audio_path": segment.audio_path,
        "model": identity.model, "backend": identity.backend, "prompt_id": identity.prompt_id,
        "prompt_sha256": identity.prompt_sha256, "parse_status": p.parse_status,
        "n_audio_tokens": p.n_audio_tokens, "padding": p.padding,
        "batch_size": outcome.batch_size, "cache_hit": outcome.cache_hit, "error": p.error,
        "category": segment.category, "snr_db": segment.snr_db, "segment_set": segment.set_dir,
        "case_id": case_id,
    }


def _marker_name(text: str) -> str:
    return re.sub(r"\W+", "_", str(text).strip().lower()).strip("_") or "unnamed"


class QsmSession:
    """Per-session state, kept on the config's stash (never in module globals)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.is_worker = hasattr(config, "workerinput")
        self.settings = self._resolve(config)
        self.gates = [Gate.parse(g) for g in self.settings["gate"] or []]
        if self.settings["summary"] not in SUMMARY_MODES:
            raise pytest.UsageError(f"--qsm-summary {self.settings['summary']!r}: use one of "
                                    f"{', '.join(SUMMARY_MODES)}")
        self.run_id = (config.workerinput["qsm_run_id"] if self.is_worker else
                       f"{time.strftime('%Y%m%d-%H%M%S')}-{_marker_name(self.settings['model'])}-{os.getpid()}")
        self.run_dir = Path(self.settings["out"].replace("{run_id}", self.run_id))
        if not self.run_dir.is_absolute():
            self.run_dir = Path(config.invocation_params.dir) / self.run_dir
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise pytest.UsageError(f"--qsm-out {self.run_dir} exists and is not a directory; "
                                    "name a directory for the run's results")
        self.segments: list[Segment | InvalidSegmentSet] | None = None
        self.sets: list[SegmentSet] = []
        self.backend = None
        self.runner: Runner | None = None
        self.items: list[pytest.Item] = []     # every collected item: xdist queues their indices
        self.plan: list[Segment] = []          # selected eval cases, in run order
        self.plan_index: dict[str, int] = {}   # nodeid -> position in plan
        self.writer: ResultWriter | None = None
        self.manifest: RunManifest | None = None
        self.worker_info: list[dict] = []
        self.verdicts = []
        self._frame = None
        self._queue = None                     # xdist worker: lists the indices queued here
        self.started = time.perf_counter()
        self.load_seconds: float | None = None

    @staticmethod
    def _resolve(config: pytest.Config) -> dict:
        pyproject = config.rootpath / "pyproject.toml"
        names = [s.name for s in qsm_config.CORE_SETTINGS] + [o.name for o in qsm_config.backend_options()]
        cli = {name: config.getoption("qsm_" + name, None) for name in names}
        try:
            return qsm_config.resolve_settings(cli, qsm_config.read_tool_table(pyproject), pyproject.parent)
        except (qsm_config.SettingsError, ValueError) as exc:
            raise pytest.UsageError(str(exc)) from None

    # --- collection -------------------------------------------------------------------
    def load_segments(self) -> list[Segment | InvalidSegmentSet]:
        from qsm_eval.segments import SegmentSet, SegmentSetError, expand_set_paths

        if self.segments is not None:
            return self.segments
        patterns = self.settings["segments"] or [str(files("qsm_eval") / "data" / "demo")]
        self.segments = []
        seen: set[Path] = set()
        for pattern in patterns:
            try:
                dirs = expand_set_paths([pattern], root=self.config.invocation_params.dir,
                                        metadata_file=self.settings["metadata_file"])
            except SegmentSetError as exc:
                self.segments.append(InvalidSegmentSet(pattern, str(exc)))
                continue
            for directory in dirs:
                if directory in seen:
                    continue  # named by two patterns: still one set, evaluated once
                seen.add(directory)
                try:
                    segment_set = SegmentSet.load(directory, self.settings["metadata_file"])
                except SegmentSetError as exc:
                    self.segments.append(InvalidSegmentSet(str(directory), str(exc)))
                    continue
                self.segments.extend(segment_set)
                self.sets.append(segment_set)
                if segment_set.missing_audio:
                    warnings.warn(MissingAudioWarning(segment_set.missing_audio_message()))
        return self.segments

    # --- running ----------------------------------------------------------------------
    def load_backend(self):
        if self.backend is None:
            settings = qsm_config.backend_settings(self.settings)
            # Under xdist each worker loads its own model: its index lets a backend put
            # replica k on GPU k (mod the GPUs present).
            worker = getattr(self.config, "workerinput", None)
            settings["worker_index"] = int(worker["workerid"].removeprefix("gw")) if worker else None
            settings["worker_count"] = int(worker["workercount"]) if worker else None
            started = time.perf_counter()
            try:
                self.backend = create_backend(settings["model"], settings)
            except BackendError as exc:
                pytest.exit(f"qsm-eval: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
            self.load_seconds = time.perf_counter() - started
            from qsm_eval.cache import PredictionCache
            from qsm_eval.runner import Runner

            cache = PredictionCache(self.settings["cache"]) if self.settings["cache"] else None
            self.runner = Runner(self.backend, self.settings["batch_size"], cache=cache)
        return self.backend

    def predict(self, item: pytest.Item, segment: Segment):
        self.load_backend()
        return self.runner.predict(segment, self.upcoming(item))

    def upcoming(self, item: pytest.Item):
        """The cases this process will run next, for batching ahead."""
        if self.is_worker and self._queue is None:
            self._queue = _xdist_queue(self.config) or (lambda: None)  # found once, not per case
        queue = self._queue() if self.is_worker else None
        if queue is not None:
            for index in queue:
                segment = _segment_of(self.items[index])
                if segment is not None:
                    yield segment
            return
        start = self.plan_index.get(item.nodeid)
        if start is not None:
            for index in range(start + 1, len(self.plan)):  # no slice: O(batch), not O(plan)
                yield self.plan[index]

    def describe_backend(self) -> dict:
        if self.backend is None:
            return {}
        info = dict(self.backend.describe())
        if self.runner is not None:
            info["runner"] = {k: round(v, 6) if isinstance(v, float) else v
                              for k, v in self.runner.stats.items()}
            info["runner"]["batch_size"] = self.runner.batch_size
            info["runner"]["load_s"] = round(self.load_seconds, 6)
        timings = getattr(self.backend, "timings", None)
        if callable(timings):
            info["timings"] = timings()
        return info

    # --- results (controller) ---------------------------------------------------------
    def start_run(self) -> None:
        from qsm_eval.results import ResultWriter, RunManifest

        self.load_segments()  # on the xdist controller, only to record what was evaluated
        self.writer = ResultWriter(self.run_dir)
        self.manifest = RunManifest(run_id=self.run_id, model=self.settings["model"],
                                    options={k: v for k, v in self.settings.items()},
                                    segment_sets=[s.manifest() for s in self.sets])
        self.manifest.options["argv"] = list(self.config.invocation_params.args)
        self.manifest.write(self.run_dir)

    def finish_run(self, status: str) -> None:
        if self.writer is None:
            return
        self.writer.finalize()
        self.manifest.status = status
        self.manifest.finished_at = time.time()
        self.manifest.n_results = len(self.writer.rows)
        self.manifest.backend = self.describe_backend()
        if self.worker_info:  # under xdist: what every worker's backend reported
            self.manifest.backend = {**self.worker_info[0], "workers": list(self.worker_info)}
        self.manifest.timings["wall_s"] = round(time.perf_counter() - self.started, 3)
        self.manifest.gates = [v.to_dict() for v in self.verdicts]
        self.manifest.write(self.run_dir)

    # --- hooks of the session: registered on the plugin manager in pytest_configure ----
    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session):
        # The xdist controller collects nothing itself: it always records the run.
        distributing = session.config.pluginmanager.has_plugin("dsession")
        has_cases = distributing or bool(self.plan) or any(_is_invalid_set(i) for i in session.items)
        if self.is_worker or not has_cases or session.config.option.collectonly:
            return (yield)
        self.start_run()
        try:
            result = yield
        except BaseException:
            self.finish_run("interrupted")
            raise
        # Gates change the exit status here, after the loop: by sessionfinish it is too
        # late to count a failure on the session (the reason pytest-cov gives too).
        self.verdicts = [evaluate_gate(gate, self.results_frame()) for gate in self.gates]
        if any(not v.passed for v in self.verdicts):
            session.testsfailed += 1
        self.finish_run("interrupted" if session.shouldstop else "complete")
        return result

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.writer is None or report.when != "call":
            return
        for name, value in report.user_properties:
            if name == RESULT_PROPERTY:
                self.writer.append(value)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        """xdist controller: keep what each worker's backend reported, for run.json."""
        info = getattr(node, "workeroutput", {}).get("qsm_backend")
        if info:
            self.worker_info.append(info)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        if self.is_worker and self.backend is not None:
            session.config.workeroutput["qsm_backend"] = self.describe_backend()  # type: ignore[attr-defined]
        if self.writer is not None and self.manifest.status == "running":
            self.finish_run("interrupted")  # Ctrl-C before the loop wrapper could finish
        if self.runner is not None:
            self.runner.close()
        if self.backend is not None:
            self.backend.close()

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config: pytest.Config) -> None:
        if self.is_worker or self.writer is None:
            return
        if self.settings["summary"] == "none":
            for verdict in self.verdicts:  # verdicts are always shown: they decide the exit status
                terminalreporter.write_line(f"gate {verdict.message}", red=not verdict.passed,
                                            green=verdict.passed)
            return
        from qsm_eval.analysis.summary import render_summary

        terminalreporter.write(render_summary(self.results_frame(), self.verdicts, self.run_dir,
                                              width=terminalreporter._tw.fullwidth,
                                              color=terminalreporter.hasmarkup,
                                              mode=self.settings["summary"]))

    def results_frame(self):
        """The rows as a DataFrame, converted once for the gates and the summary alike."""
        if self._frame is None or len(self._frame) != len(self.writer.rows):
            self._frame = self.writer.table().to_pandas()
        return self._frame


def _case_param(item) -> Segment | InvalidSegmentSet | None:
    """What an eval case is parametrized with; None for any other item."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(SEGMENT_ARG) if callspec else None


def _segment_of(item) -> Segment | None:
    value = _case_param(item)
    return None if isinstance(value, InvalidSegmentSet) else value


def _is_invalid_set(item) -> bool:
    return isinstance(_case_param(item), InvalidSegmentSet)


def _xdist_queue(config):
    """On an xdist worker: a function listing the item indices queued for this worker."""
    for plugin in config.pluginmanager.get_plugins():
        torun = getattr(plugin, "torun", None)
        if torun is not None and hasattr(torun, "lock") and type(plugin).__name__ == "WorkerInteractor":
            def queued(plugin=plugin):
                head = [plugin.nextitem_index] if isinstance(plugin.nextitem_index, int) else []
                with plugin.torun.lock() as pending:
                    return head + [i for i in pending if isinstance(i, int)]
            return queued
    return None


SESSION_KEY = pytest.StashKey[QsmSession]()


def _qsm(config: pytest.Config) -> QsmSession:
    return config.stash[SESSION_KEY]


# --- hooks ------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("qsm-eval", "speech-detection evals (qsm-eval)")
    qsm_config.add_options(group)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "speech: cases whose true label is SPEECH")
    config.addinivalue_line("markers", "nonspeech: cases whose true label is NONSPEECH")
    config.addinivalue_line("markers", "qsm_invalid_set: a segment set that could not be loaded")
    try:
        qsm = QsmSession(config)
    except GateError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = qsm
    config.pluginmanager.register(qsm, "qsm-eval-session")


def pytest_unconfigure(config: pytest.Config) -> None:
    qsm = config.stash.get(SESSION_KEY, None)
    if qsm is not None:
        config.pluginmanager.unregister(qsm)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist controller: workers share the run id, so they agree on the run directory."""
    node.workerinput["qsm_run_id"] = _qsm(node.config).run_id


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if SEGMENT_ARG not in metafunc.fixturenames:
        return
    qsm = _qsm(metafunc.config)
    cases = qsm.load_segments()
    marks_cache: dict[tuple, list] = {}
    params, ids = [], []
    multi_set = len({c.set_dir for c in cases if not isinstance(c, InvalidSegmentSet)}) > 1
    for case in cases:
        if isinstance(case, InvalidSegmentSet):
            params.append(pytest.param(case, marks=[pytest.mark.qsm_invalid_set]))
            ids.append(f"invalid-set-{_marker_name(Path(case.pattern).name)}")
            continue
        key = (case.dataset, case.label, case.duration_ms)
        marks = marks_cache.get(key)
        if marks is None:
            dataset, duration = _marker_name(case.dataset), f"dur_{case.duration_ms}ms"
            for name in (dataset, duration):
                metafunc.config.addinivalue_line("markers", f"{name}: qsm-eval cases ({name})")
            marks = marks_cache[key] = [getattr(pytest.mark, dataset),
                                        getattr(pytest.mark, case.label.lower()),
                                        getattr(pytest.mark, duration)]
        params.append(pytest.param(case, marks=marks))
        prefix = f"{_marker_name(Path(case.set_dir).name)}-" if multi_set else ""
        ids.append(f"{prefix}{case.dataset}-{case.label.lower()}-{case.duration_ms}ms-{case.segment_id}")
    metafunc.parametrize(SEGMENT_ARG, params, ids=ids)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    """--qsm-limit: keep the first N eval cases left after -k/-m selection."""
    limit = _qsm(config).settings["limit"]
    if limit is None:
        return
    kept, dropped, n = [], [], 0
    for item in items:
        if _case_param(item) is not None:
            n += 1
            if n > limit:
                dropped.append(item)
                continue
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_collection_finish(session: pytest.Session) -> None:
    qsm = _qsm(session.config)
    qsm.items = session.items
    for item in session.items:
        segment = _segment_of(item)
        if segment is not None:
            qsm.plan_index[item.nodeid] = len(qsm.plan)
            qsm.plan.append(segment)


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report, config):
    if report.when == "call" and report.passed and any(n == MISS_PROPERTY for n, _ in report.user_properties):
        return "miss", "M", ("MISS", {"yellow": True})
    return None


# --- fixtures ---------------------------------------------------------------------------
@pytest.fixture
def qsm_case(request: pytest.FixtureRequest, qsm_segment) -> EvalCase:
    """The eval case of this test: ``qsm_case.segment`` (the Segment record),
    ``qsm_case.predict()`` (the model's Prediction, batched ahead by the runner) and
    ``qsm_case.check()`` (pass when right; a wrong answer is a MISS unless --qsm-strict;
    failing when the harness could not get an answer)."""
    if isinstance(qsm_segment, InvalidSegmentSet):
        pytest.fail(f"segment set {qsm_segment.pattern} cannot be used: {qsm_segment.error}",
                    pytrace=False)
    return EvalCase(qsm_segment, request.node, _qsm(request.config))


@pytest.fixture(scope="session")
def qsm_model(request: pytest.FixtureRequest):
    """The session's backend (``--qsm-model``), loaded once per process (per xdist worker)."""
    return _qsm(request.config).load_backend()


