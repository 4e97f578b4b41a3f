"""CI gates: ``metric[subset] OP bound`` expressions evaluated once on the final results.

    balanced_accuracy>=0.85
    recall[dataset=ava,duration=20ms]>=0.6
    accuracy[label=nonspeech,min_n=50]>0.9
    dt75_ms<=60

A subset with fewer than ``min_n`` cases (default 1) fails rather than passing on no
evidence; so does a metric that cannot be computed (NaN). A duration threshold gate
(dt50_ms, dt75_ms) fails when the threshold is "not reached" or its curve is flagged
("non-monotone", a parameter at a bound...), with the flag in its message: a falling curve's
DT50 of 0.14 ms must not pass ``dt50_ms<=20``.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from qsm_eval.analysis.metrics import METRICS, THRESHOLD_METRICS

if TYPE_CHECKING:
    import pandas as pd

OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_GATE = re.compile(r"^\s*(?P<metric>[a-z0-9_]+)\s*(?:\[(?P<subset>[^\]]*)\])?\s*"
                   r"(?P<op>>=|<=|==|>|<)\s*(?P<bound>[-+0-9.eE]+)\s*$")
# Subset keys users write -> result columns.
SUBSET_COLUMNS = {
    "dataset": "dataset", "duration": "duration_ms", "duration_ms": "duration_ms",
    "label": "true_label", "true_label": "true_label", "condition": "condition",
    "model": "model", "split": "split", "category": "category", "segment_set": "segment_set",
}


class GateError(ValueError):
    """A gate expression that cannot be parsed."""


def _duration_ms(value: str) -> int | None:
    """``20ms`` or ``20`` as 20; None when the value is not a whole number of ms."""
    try:
        return int(value.lower().removesuffix("ms"))
    except ValueError:
        return None


@dataclass(frozen=True)
class Gate:
    expression: str
    metric: str
    op: str
    bound: float
    subset: tuple[tuple[str, str], ...] = ()
    min_n: int = 1

    @classmethod
    def parse(cls, expression: str) -> Gate:
        match = _GATE.match(expression)
        if not match:
            raise GateError(
                f"gate {expression!r} is not of the form metric[key=value,...]>=bound "
                "(operators >=, <=, >, <, ==)")
        metric = match["metric"]
        if metric not in METRICS and metric not in THRESHOLD_METRICS:
            raise GateError(f"gate {expression!r}: unknown metric {metric!r}; "
                            f"known: {', '.join(sorted({**METRICS, **THRESHOLD_METRICS}))}")
        subset, min_n = [], 1
        for part in filter(None, (p.strip() for p in (match["subset"] or "").split(","))):
            key, sep, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not value:
                raise GateError(f"gate {expression!r}: subset item {part!r} is not key=value")
            if key == "min_n":
                try:
                    min_n = int(value)
                except ValueError:
                    raise GateError(f"gate {expression!r}: min_n={value!r} is not an integer") from None
            elif key in SUBSET_COLUMNS:
                if SUBSET_COLUMNS[key] == "duration_ms" and _duration_ms(value) is None:
                    raise GateError(f"gate {expression!r}: {key}={value!r} is not a duration "
                                    "in whole ms (e.g. 20 or 20ms)")
                subset.append((key, value))
            else:
                raise GateError(f"gate {expression!r}: unknown subset key {key!r}; known: "
                                f"{', '.join(sorted(SUBSET_COLUMNS))}, min_n")
        try:
            bound = float(match["bound"])
        except ValueError:
            raise GateError(f"gate {expression!r}: bound {match['bound']!r} is not a number") from None
        return cls(expression.strip(), metric, match["op"], bound, tuple(subset), min_n)

    def select(self, df: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        mask = pd.Series(True, index=df.index)
        for key, value in self.subset:
            column = SUBSET_COLUMNS[key]
            if column not in df:
                return df.iloc[0:0]
            if column == "duration_ms":
                mask &= df[column] == _duration_ms(value)
            elif column == "true_label":
                mask &= df[column].str.upper() == value.upper().replace("-", "")
            else:
                mask &= df[column].astype(str).str.lower() == value.lower()
        return df[mask]


@dataclass
class GateVerdict:
    expression: str
    passed: bool
    value: float | None
    n: int
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


def threshold_value(df: pd.DataFrame, name: str) -> tuple[float | None, str]:
    """A duration threshold's point value (ms) for a gate, and what stops a gate from trusting
    it ("" when nothing): "not reached", the curve's flags, or why there is no curve."""
    from qsm_eval.analysis import formatting
    from qsm_eval.analysis.outcomes import fit_rows
    from qsm_eval.analysis.psychometric import fit_psychometric

    try:
        fit = fit_psychometric(fit_rows(df), levels=(name,), n_boot=0)
    except ValueError as exc:
        return None, f"no curve: {exc}"
    t = fit.thresholds[name]
    blocking = formatting.blocking_flags(t)
    value = t.duration_ms
    if value is None or math.isinf(value) or math.isnan(value):
        value = None
    return value, "; ".join(blocking)


def evaluate_gate(gate: Gate, df: pd.DataFrame) -> GateVerdict:
    subset = gate.select(df)
    n = len(subset)
    if n < gate.min_n:
        return GateVerdict(gate.expression, False, None, n,
                           f"FAILED {gate.expression}: only {n} case(s) in the subset, "
                           f"need at least {gate.min_n}")
    if gate.metric in THRESHOLD_METRICS:
        value, blocking = threshold_value(subset, THRESHOLD_METRICS[gate.metric])
        if blocking:
            return GateVerdict(gate.expression, False, value, n,
                               f"FAILED {gate.expression}: {blocking} (n={n})")
    else:
        value = METRICS[gate.metric](subset)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return GateVerdict(gate.expression, False, None, n,
                           f"FAILED {gate.expression}: {gate.metric} cannot be computed "
                           f"on these {n} case(s)")
    passed = bool(OPERATORS[gate.op](value, gate.bound))
    verdict = "passed" if passed else "FAILED"
    return GateVerdict(gate.expression, passed, float(value), n,
                       f"{verdict} {gate.expression}: {gate.metric} = {value:.4g} "
                       f"(bound {gate.op} {gate.bound:g}, n={n})")


def evaluate_gates(expressions: list[str], df: pd.DataFrame) -> list[GateVerdict]:
    return [evaluate_gate(Gate.parse(e), df) for e in expressions]
