"""The pytest plugin: hooks and fixtures over the run engine (qsm_eval/engine.py), thin glue
in the manner of pytest-cov. Each case's answer travels on its test report (the ``qsm_eval``
attribute: xdist serialises it, JUnit XML ignores it) to the one process that records the run.
Nothing heavy is imported: every pytest process with qsm-eval installed loads this module."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from qsm_eval import config as qsm_config
from qsm_eval import engine as qsm_engine
from qsm_eval.analysis.gates import GateError
from qsm_eval.backends import BackendError

if TYPE_CHECKING:
    from qsm_eval.engine import Engine
    from qsm_eval.segments import Segment

SEGMENT_ARG = "qsm_segment"
REPORT_ATTR = "qsm_eval"      # the payload an eval case's report carries to the recorder
ENGINE_KEY = pytest.StashKey["Engine"]()
CASE_KEY = pytest.StashKey["EvalCase"]()
POSITION_KEY = pytest.StashKey[int]()   # an eval item's position in session.items


class EvalCase:
    """One segment under evaluation: what ``qsm_case`` gives a test."""

    def __init__(self, segment: Segment, item: pytest.Item, engine: Engine):
        self.segment = segment
        self.prediction = None
        self.result = None
        self.miss: str | None = None
        self.fatal: str | None = None   # the model cannot answer at all (it did not load)
        self._item = item
        self._engine = engine

    def predict(self):
        """The model's answer for this segment (batched with the cases due next)."""
        if self.prediction is None:
            try:
                self.prediction, self.result = self._engine.answer(self._item.stash[POSITION_KEY],
                                                                   self._item.name)
            except BackendError as exc:  # the recording process stops the run on this report
                self.fatal = f"qsm-eval: {exc}"
                pytest.fail(self.fatal, pytrace=False)
        return self.prediction

    def check(self) -> None:
        """Pass when the answer is right; fail when no answer could be had.

        A wrong answer is a MISS: reported and counted, a failure only with --qsm-strict.
        """
        failure, self.miss = qsm_engine.judge(self.segment, self.predict(), self._engine.settings["strict"])
        if failure is not None:
            pytest.fail(failure, pytrace=False)


def _engine(config: pytest.Config) -> Engine:
    return config.stash[ENGINE_KEY]


def _case_param(item):
    """What an eval case is parametrized with (Segment or InvalidSegmentSet); None otherwise."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(SEGMENT_ARG) if callspec else None


class ReportHooks:
    """The hooks that are given no config: registered per session, holding its engine."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.restore_sigterm = None

    def stop_on_sigterm(self) -> None:
        """Once the session runs eval cases: SIGTERM is handled as Ctrl-C is."""
        if self.restore_sigterm is None:
            self.restore_sigterm = qsm_engine.stop_on_sigterm()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, REPORT_ATTR, None)
        if payload is None:
            return
        stop = self.engine.record(payload)
        self.stop_on_sigterm()
        if stop:  # one clear line, plain run or xdist, and run.json says why
            pytest.exit(stop, returncode=pytest.ExitCode.USAGE_ERROR)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        """xdist controller: keep what each worker's backend reported, for run.json."""
        self.engine.add_worker(getattr(node, "workeroutput", {}).get("qsm_backend"))


# --- configuration ----------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    qsm_config.add_options(parser.getgroup("qsm-eval", "speech-detection evals (qsm-eval)"))


@pytest.hookimpl(trylast=True)  # after xdist's pytest_configure, which registers "dsession"
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "speech: cases whose true label is SPEECH")
    config.addinivalue_line("markers", "nonspeech: cases whose true label is NONSPEECH")
    config.addinivalue_line("markers", "qsm_invalid_set: a segment set that could not be loaded")
    cli = {name: config.getoption("qsm_" + name, None) for name in qsm_engine.setting_names()}
    try:
        engine = qsm_engine.start_engine(
            cli, config.rootpath, config.invocation_params.dir, list(config.invocation_params.args),
            workerinput=getattr(config, "workerinput", None),
            distributing=config.pluginmanager.has_plugin("dsession"),
            maxfail=config.getoption("maxfail", 0) or 0)
    except (qsm_config.SettingsError, GateError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[ENGINE_KEY] = engine
    config.pluginmanager.register(ReportHooks(engine), "qsm-eval-reports")


def pytest_unconfigure(config: pytest.Config) -> None:
    hooks = config.pluginmanager.get_plugin("qsm-eval-reports")
    if hooks is not None:
        config.pluginmanager.unregister(hooks)
        if hooks.restore_sigterm is not None:
            hooks.restore_sigterm()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist controller: what every worker is told (run id, scheduling block)."""
    node.workerinput.update(_engine(node.config).node_input())


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Under -n (--dist load): whole blocks of cases per worker, so batches stay full."""
    return _engine(config).scheduler(config, log, config.getvalue("dist"))


# --- collection -------------------------------------------------------------------------
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if SEGMENT_ARG not in metafunc.fixturenames:
        return
    cases = _engine(metafunc.config).load_cases()
    marks_of: dict[tuple, list] = {}  # one mark list per (dataset, label, duration)
    params = []
    for case in cases:
        if isinstance(case, qsm_engine.InvalidSegmentSet):
            params.append(pytest.param(case, marks=[pytest.mark.qsm_invalid_set]))
            continue
        key = (case.dataset, case.label, case.duration_ms)
        if key not in marks_of:
            names = qsm_engine.case_marks(case)
            for name in (names[0], names[2]):
                metafunc.config.addinivalue_line("markers", f"{name}: qsm-eval cases ({name})")
            marks_of[key] = [getattr(pytest.mark, name) for name in names]
        params.append(pytest.param(case, marks=marks_of[key]))
    metafunc.parametrize(SEGMENT_ARG, params, ids=qsm_engine.case_ids(cases))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    """--qsm-limit: keep the first N eval cases left after -k/-m selection."""
    keep = qsm_engine.within_limit([_case_param(i) is not None for i in items],
                                   _engine(config).settings["limit"])
    if not all(keep):
        config.hook.pytest_deselected(items=[i for i, k in zip(items, keep) if not k])
        items[:] = [i for i, k in zip(items, keep) if k]


def pytest_collection_finish(session: pytest.Session) -> None:
    params = [_case_param(item) for item in session.items]
    for position, item in enumerate(session.items):
        if params[position] is not None:
            item.stash[POSITION_KEY] = position
    _engine(session.config).plan_cases(params)
    if any(p is not None for p in params):
        session.config.pluginmanager.get_plugin("qsm-eval-reports").stop_on_sigterm()


# --- running ----------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if _case_param(item) is not None and (call.when == "call" or report.failed):
        case = item.stash.get(CASE_KEY, None)
        setattr(report, REPORT_ATTR, _engine(item.config).payload(case and case.result, case and case.miss,
                                                                  case and case.fatal))
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report, config):
    payload = getattr(report, REPORT_ATTR, None)
    if report.when == "call" and report.passed and payload and payload["miss"]:
        return "miss", "M", ("MISS", {"yellow": True})
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session):
    engine = _engine(session.config)
    try:
        result = yield
    except BaseException as exc:
        engine.finish("interrupted", f"{type(exc).__name__}: {exc}".rstrip(": "))
        raise
    # Gates change the exit status here, after the loop: by sessionfinish it is too late
    # to count a failure on the session (the reason pytest-cov gives too).
    if not engine.gates_pass():
        session.testsfailed += 1
    stop = session.shouldstop or session.shouldfail
    engine.finish("interrupted" if stop else "complete", str(stop) if stop else None)
    return result


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    engine = _engine(session.config)
    getattr(session.config, "workeroutput", {}).update(engine.worker_output())
    engine.finish("interrupted", "the session ended before its run loop did")  # no-op when done
    engine.close()


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    text = _engine(config).summary(width=terminalreporter._tw.fullwidth, color=terminalreporter.hasmarkup)
    for line in text or []:
        terminalreporter.write_line(line.rstrip("\n"), red=line.startswith(("gate FAILED", "qsm-eval:")),
                                    green=line.startswith("gate passed"))


# --- fixtures ---------------------------------------------------------------------------
@pytest.fixture
def qsm_case(request: pytest.FixtureRequest, qsm_segment) -> EvalCase:
    """The eval case of this test: ``qsm_case.segment`` (the Segment record),
    ``qsm_case.predict()`` (the model's Prediction, batched ahead by the runner) and
    ``qsm_case.check()`` (pass when right; a wrong answer is a MISS unless --qsm-strict;
    failing when the harness could not get an answer)."""
    if isinstance(qsm_segment, qsm_engine.InvalidSegmentSet):
        pytest.fail(f"segment set {qsm_segment.pattern} cannot be used: {qsm_segment.error}",
                    pytrace=False)
    case = request.node.stash[CASE_KEY] = EvalCase(qsm_segment, request.node, _engine(request.config))
    return case


@pytest.fixture(scope="session")
def qsm_model(request: pytest.FixtureRequest):
    """The session's backend (``--qsm-model``), loaded once per process (per xdist worker)."""
    return _engine(request.config).load_backend()
