"""Psychometric curves: how performance grows with clip duration, and the duration thresholds.

Proportion correct is modelled against x = ln(duration_ms) as

    P(x) = guess + (1 - guess - lapse) * F(slope * (x - location))

with guess = 0.5 (speech vs non-speech is a two-alternative decision), a lapse rate bounded to
``lapse_bounds`` (default 0 to 0.06: a few answers are wrong however long the clip), and F
a logistic or a Weibull core (Weibull in duration = Gumbel in log duration). Parameters are
fitted by maximum likelihood on the binomial counts per duration (scipy L-BFGS-B).

Thresholds invert the fitted curve:
  DT50  the duration where performance is halfway between guess and ceiling (F = 0.5);
  DTnn  (nn > 50) the duration where proportion correct reaches nn/100, e.g. DT75 at 0.75.
A threshold outside the tested durations is reported as extrapolated and flagged, never
clamped; a level above the fitted ceiling is "not reached" (infinite duration).
Intervals come from a seeded bootstrap that resamples whole sources (resampling.py).

Because a bias towards one answer hides inside plain accuracy, ``rate_curves`` also fits
P(say SPEECH) for speech trials (hit rate) and non-speech trials (false-alarm rate)
separately, and ``dprime_table`` gives the sensitivity d' and criterion c per duration.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, special, stats
from threadpoolctl import threadpool_limits

from qsm_eval.analysis import resampling
from qsm_eval.analysis.outcomes import outcomes

GUESS = 0.5
DEFAULT_LAPSE_BOUNDS = (0.0, 0.06)
DEFAULT_LEVELS = ("DT50", "DT75")
CORES = ("logistic", "weibull")
_SLOPE_BOUNDS = (0.05, 60.0)     # per ln(ms); 60 is a step within one tested duration
_EPS = 1e-12


# --- the curve ------------------------------------------------------------------------------

def core_cdf(core: str, z: np.ndarray) -> np.ndarray:
    if core == "logistic":
        return special.expit(z)
    if core == "weibull":
        return -np.expm1(-np.exp(np.minimum(z, 50.0)))
    raise ValueError(f"unknown psychometric core {core!r}; choose one of {', '.join(CORES)}")


def _core_pdf(core: str, z: np.ndarray) -> np.ndarray:
    if core == "logistic":
        f = special.expit(z)
        return f * (1.0 - f)
    z = np.minimum(z, 50.0)
    return np.exp(z - np.exp(z))


def _core_inverse(core: str, f: float) -> float:
    if core == "logistic":
        return float(special.logit(f))
    return float(np.log(-np.log1p(-f)))


@dataclass(frozen=True)
class Curve:
    """A fitted psychometric function of ln(duration_ms)."""

    core: str
    location: float   # ln(ms) where F = 0.5 for the logistic core
    slope: float      # per ln(ms)
    lapse: float
    guess: float = GUESS

    @property
    def ceiling(self) -> float:
        return 1.0 - self.lapse

    def p_correct(self, duration_ms) -> np.ndarray:
        x = np.log(np.asarray(duration_ms, dtype=float))
        return self.guess + (self.ceiling - self.guess) * core_cdf(self.core, self.slope * (x - self.location))

    def duration_at(self, level: float | None) -> float:
        """Duration (ms) where P reaches ``level``; None means halfway to the ceiling (DT50)."""
        f = 0.5 if level is None else (level - self.guess) / (self.ceiling - self.guess)
        if f <= 0.0:
            return 0.0
        if f >= 1.0:
            return math.inf
        return float(math.exp(self.location + _core_inverse(self.core, f) / self.slope))


def level_of(name: str) -> float | None:
    """Target proportion correct of a threshold name: DT50 -> None (midpoint), DT75 -> 0.75."""
    text = name.strip().upper().removeprefix("DT")
    try:
        percent = float(text)
    except ValueError:
        raise ValueError(f"threshold {name!r} is not of the form DT<percent>, e.g. DT50, DT75, DT90") from None
    if percent == 50:
        return None
    if not 50 < percent < 100:
        raise ValueError(f"threshold {name!r}: the level must lie between 50 (guess) and 100 percent")
    return percent / 100.0


# --- maximum likelihood -------------------------------------------------------------------

def _nll(theta, x, k, n, core, guess):
    """Binomial negative log-likelihood of (location, ln slope, lapse) and its gradient."""
    location, log_slope, lapse = theta
    slope = math.exp(log_slope)
    z = slope * (x - location)
    f = core_cdf(core, z)
    span = 1.0 - guess - lapse
    p = np.clip(guess + span * f, _EPS, 1.0 - _EPS)
    value = -np.sum(k * np.log(p) + (n - k) * np.log1p(-p))
    dp = -(k / p - (n - k) / (1.0 - p))          # d nll / d p
    dz = dp * span * _core_pdf(core, z)          # d nll / d z
    grad = np.array([np.sum(dz * -slope), np.sum(dz * z), np.sum(dp * -f)])
    return value, grad


def _bounds(x: np.ndarray, lapse_bounds) -> list[tuple[float, float]]:
    lo, hi = float(x.min()), float(x.max())
    span = max(hi - lo, 1.0)
    return [(lo - 3 * span, hi + 3 * span), tuple(np.log(_SLOPE_BOUNDS)), tuple(lapse_bounds)]


# The fits are tiny: multithreaded BLAS inside L-BFGS-B only spins (ten times slower on a
# busy machine), so the public fitting functions hold it to one thread.
_one_blas_thread = threadpool_limits.wrap(limits=1, user_api="blas")


def _minimize(starts, x, k, n, core, guess, bounds):
    best = None
    for start in starts:
        res = optimize.minimize(_nll, start, args=(x, k, n, core, guess), jac=True,
                                method="L-BFGS-B", bounds=bounds)
        if best is None or res.fun < best.fun:
            best = res
    return best


def _starts(x: np.ndarray, lapse_bounds) -> list[tuple[float, float, float]]:
    """Several starting points: the likelihood can have a flat shoulder far from the data."""
    lapse0 = float(np.mean(lapse_bounds))
    starts = [(loc, math.log(s), lapse0) for loc in np.quantile(x, [0.1, 0.5, 0.9]) for s in (1.0, 5.0)]
    # Near-step optima (mostly wrong below one duration, right above) have narrow basins: a
    # steep start in each gap between tested durations reaches them.
    levels = np.unique(x)
    starts += [(loc, math.log(25.0), lapse0) for loc in (levels[1:] + levels[:-1]) / 2]
    return starts


@_one_blas_thread
def fit_curve(duration_ms, n_correct, n_trials, core: str = "logistic",
              lapse_bounds=DEFAULT_LAPSE_BOUNDS, guess: float = GUESS) -> Curve:
    """Maximum-likelihood curve through counts of correct answers per duration."""
    x = np.log(np.asarray(duration_ms, dtype=float))
    k = np.asarray(n_correct, dtype=float)
    n = np.asarray(n_trials, dtype=float)
    core_cdf(core, np.zeros(1))  # rejects an unknown core with a clear message
    if not 0.0 <= lapse_bounds[0] <= lapse_bounds[1] < 1.0 - guess:
        raise ValueError(f"lapse bounds {lapse_bounds} must satisfy 0 <= low <= high < {1 - guess}")
    bounds = _bounds(x, lapse_bounds)
    res = _minimize(_starts(x, lapse_bounds), x, k, n, core, guess, bounds)
    return Curve(core, float(res.x[0]), float(math.exp(res.x[1])), float(res.x[2]), guess)


def _batch_nll(theta, x, k, n, core, guess):
    z = np.exp(theta[:, 1:2]) * (x[None, :] - theta[:, 0:1])
    p = np.clip(guess + (1.0 - guess - theta[:, 2:3]) * core_cdf(core, z), _EPS, 1.0 - _EPS)
    return -np.sum(k * np.log(p) + (n - k) * np.log1p(-p), axis=1)


def _score_batch(x, k, n, theta0, core, guess, lower, upper, max_iter: int = 50, tol: float = 1e-9):
    """Projected Fisher scoring with step halving, vectorised over rows of ``k`` and ``n``,
    row i started from ``theta0[i]``. Parameters sitting on a bound with the gradient pushing
    outwards are held there (active set). Returns (theta, nll, unconverged)."""
    theta = np.array(theta0, dtype=float)
    nll = _batch_nll(theta, x, k, n, core, guess)
    active = np.ones(len(k), dtype=bool)
    for _iteration in range(max_iter):
        if not active.any():
            break
        t, kk, nn = theta[active], k[active], n[active]
        slope = np.exp(t[:, 1:2])
        z = slope * (x[None, :] - t[:, 0:1])
        f, pdf = core_cdf(core, z), _core_pdf(core, z)
        span = 1.0 - guess - t[:, 2:3]
        p = np.clip(guess + span * f, _EPS, 1.0 - _EPS)
        jac = np.stack([-span * pdf * slope, span * pdf * z, -f], axis=2)   # dp/dtheta
        dp = -(kk / p - (nn - kk) / (1.0 - p))
        grad = np.einsum("bd,bdj->bj", dp, jac)
        info = np.einsum("bd,bdi,bdj->bij", nn / (p * (1.0 - p)), jac, jac)
        # Hold parameters on a bound whose gradient would push them further out.
        # (Within 1e-6 of the range counts as on the bound: a halved step stops just short.)
        near = 1e-6 * (upper - lower)
        at_low, at_high = (t <= lower + near) & (grad > 0), (t >= upper - near) & (grad < 0)
        held = at_low | at_high
        t = np.where(at_low, lower, np.where(at_high, upper, t))
        grad = np.where(held, 0.0, grad)
        eye = np.eye(3)[None]
        mask = (~held)[:, :, None] & (~held)[:, None, :]
        info = np.where(mask, info, 0.0) + np.where(held[:, :, None], eye, 0.0)
        info = info + 1e-9 * eye
        step = -np.linalg.solve(info, grad[:, :, None])[:, :, 0]
        decrement = -np.sum(grad * step, axis=1)  # predicted nll decrease x 2 (Newton decrement)
        # A trust region: at most one ln unit of location or slope per iteration, so a
        # replicate does not leap onto a far, flat shoulder of the likelihood.
        step *= np.minimum(1.0, 1.0 / np.maximum(np.abs(step[:, :2]).max(axis=1), 1e-300))[:, None]
        old = nll[active]
        new_theta, new_nll = t.copy(), old.copy()
        pending = np.arange(len(t))
        scale = 1.0
        for _halving in range(30):  # halve the step until the likelihood improves
            trial = np.clip(t[pending] + scale * step[pending], lower, upper)
            trial_nll = _batch_nll(trial, x, kk[pending], nn[pending], core, guess)
            ok = trial_nll <= old[pending]
            new_theta[pending[ok]], new_nll[pending[ok]] = trial[ok], trial_nll[ok]
            pending = pending[~ok]
            if not len(pending):
                break
            scale /= 2.0
        idx = np.flatnonzero(active)
        theta[idx], nll[idx] = new_theta, new_nll
        done = (decrement < 2 * tol) | ((old - new_nll) <= 0)
        active[idx[done]] = False
    return theta, nll, active


def fit_curves_batch(x, k, n, starts, core, guess, bounds):
    """Maximum-likelihood fits of many count sets at once (bootstrap replicates x durations).

    A per-replicate scipy call costs milliseconds of overhead; vectorised scoring costs
    microseconds per replicate, so every replicate is scored from each of ``starts`` and keeps
    its best fit (one start alone can stop in a local optimum).
    Returns (theta, nll) with theta rows (location, ln slope, lapse).
    """
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    lower = np.array([b[0] for b in bounds])
    upper = np.array([b[1] for b in bounds])
    # One scoring run over every (start, replicate) pair, then each replicate's best.
    n_rep, n_start = len(k), len(starts)
    theta0 = np.repeat(np.asarray(starts, dtype=float), n_rep, axis=0)
    fitted, fitted_nll, unconverged = _score_batch(x, np.tile(k, (n_start, 1)), np.tile(n, (n_start, 1)),
                                                   theta0, core, guess, lower, upper)
    best = np.argmin(fitted_nll.reshape(n_start, n_rep), axis=0) * n_rep + np.arange(n_rep)
    theta, nll, active = fitted[best], fitted_nll[best], unconverged[best]
    # Replicates left unconverged, or on a location or slope bound (a corner that projected
    # scoring may leave slowly), are polished by scipy from where they stand.
    edge = np.any((theta[:, :2] <= lower[:2] + 1e-9) | (theta[:, :2] >= upper[:2] - 1e-9), axis=1)
    for i in np.flatnonzero(edge | active):
        res = _minimize([tuple(theta[i])], x, k[i], n[i], core, guess, bounds)
        if res.fun < nll[i]:
            theta[i], nll[i] = res.x, res.fun
    return theta, nll


# --- thresholds with bootstrap intervals --------------------------------------------------------

@dataclass
class Threshold:
    name: str
    level: float | None          # target proportion correct; None = halfway to the ceiling
    duration_ms: float
    ci_low: float
    ci_high: float
    flag: str                    # "" when inside the tested range, else what is wrong

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PsychometricFit:
    curve: Curve
    thresholds: dict[str, Threshold]
    durations_ms: np.ndarray
    n_correct: np.ndarray
    n_trials: np.ndarray
    n_clusters: int
    n_boot: int
    confidence: float
    lapse_bounds: tuple[float, float]
    boot_curves: list[Curve] = field(default_factory=list, repr=False)

    @property
    def tested_range(self) -> tuple[float, float]:
        return float(self.durations_ms.min()), float(self.durations_ms.max())

    @property
    def deviance(self) -> float:
        """Goodness of fit: twice the log-likelihood ratio of the saturated model to the curve."""
        k, n = self.n_correct.astype(float), self.n_trials.astype(float)
        p = np.clip(self.curve.p_correct(self.durations_ms), _EPS, 1 - _EPS)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = (np.where(k > 0, k * np.log(k / (n * p)), 0.0)
                     + np.where(n - k > 0, (n - k) * np.log((n - k) / (n * (1 - p))), 0.0))
        return float(2 * terms.sum())

    @property
    def deviance_p(self) -> float:
        """P-value of the deviance against chi-square (durations - 3 df), treating trials as
        independent: with repeated sources a small value may only mean clustering. NaN with
        fewer than four durations."""
        dof = len(self.durations_ms) - 3
        return float(stats.chi2.sf(self.deviance, dof)) if dof > 0 else float("nan")

    def to_dict(self) -> dict:
        return {
            "core": self.curve.core, "guess": self.curve.guess, "lapse": self.curve.lapse,
            "location_ln_ms": self.curve.location, "slope_per_ln_ms": self.curve.slope,
            "lapse_bounds": list(self.lapse_bounds), "n_clusters": self.n_clusters,
            "deviance": self.deviance, "deviance_p": self.deviance_p,
            "n_boot": self.n_boot, "confidence": self.confidence,
            "points": [{"duration_ms": float(d), "n_correct": int(k), "n_trials": int(n)}
                       for d, k, n in zip(self.durations_ms, self.n_correct, self.n_trials)],
            "thresholds": {name: t.to_dict() for name, t in self.thresholds.items()},
        }


def range_flag(duration_ms: float, tested: tuple[float, float]) -> str:
    if math.isnan(duration_ms):
        return "not estimable"
    if math.isinf(duration_ms):
        return "not reached"
    if duration_ms < tested[0]:
        return f"below tested range ({tested[0]:g} ms): extrapolated"
    if duration_ms > tested[1]:
        return f"above tested range ({tested[1]:g} ms): extrapolated"
    return ""


@_one_blas_thread
def fit_psychometric(df: pd.DataFrame, core: str = "logistic", levels=DEFAULT_LEVELS,
                     lapse_bounds=DEFAULT_LAPSE_BOUNDS, n_boot: int = resampling.DEFAULT_N_BOOT,
                     confidence: float = resampling.DEFAULT_CONFIDENCE,
                     seed: tuple = ()) -> PsychometricFit:
    """Fit proportion correct vs duration for a results frame, with source-bootstrap intervals.

    ``levels`` are threshold names (DT50, DT75, DT90...); ``seed`` parts make the bootstrap
    reproducible (the same frame and seed give the same intervals).
    """
    frame = outcomes(df)
    durations, dur_index = np.unique(frame["duration_ms"].to_numpy(dtype=float), return_inverse=True)
    if len(durations) < 2:
        raise ValueError(f"a psychometric fit needs at least two durations; the data hold "
                         f"{', '.join(f'{d:g} ms' for d in durations) or 'none'}")
    onehot = np.eye(len(durations))[dur_index]
    correct = frame["correct"].to_numpy(dtype=float)
    clusters = resampling.clusters_of(frame)
    cluster_k = clusters.sums(onehot * correct[:, None])
    cluster_n = clusters.sums(onehot)
    k, n = cluster_k.sum(axis=0), cluster_n.sum(axis=0)
    curve = fit_curve(durations, k, n, core, lapse_bounds)

    boot_curves = []
    if n_boot > 0:
        weights = resampling.bootstrap_weights(clusters, n_boot, ("psychometric", core, *seed))
        x = np.log(durations)
        bounds = _bounds(x, lapse_bounds)
        # A duration a replicate did not draw has n = 0 and adds nothing to its likelihood.
        starts = [(curve.location, math.log(curve.slope), curve.lapse)] + _starts(x, lapse_bounds)
        theta, _ = fit_curves_batch(x, weights @ cluster_k, weights @ cluster_n, starts, core,
                                    curve.guess, bounds)
        boot_curves = [Curve(core, float(t[0]), float(math.exp(t[1])), float(t[2]), curve.guess)
                       for t in theta]

    tested = (float(durations.min()), float(durations.max()))
    thresholds = {}
    for name in levels:
        level = level_of(name)
        point = curve.duration_at(level)
        lo, hi = resampling.percentile_interval([c.duration_at(level) for c in boot_curves], confidence)
        thresholds[name] = Threshold(name, level, point, lo, hi, range_flag(point, tested))
    return PsychometricFit(curve, thresholds, durations, k.astype(int), n.astype(int),
                           clusters.n_clusters, len(boot_curves), confidence, tuple(lapse_bounds),
                           boot_curves)


def threshold_ms(df: pd.DataFrame, name: str, core: str = "logistic") -> float:
    """The point value of one threshold (e.g. "DT75") for gates: NaN when no curve can be fitted
    (fewer than two durations), inf when the level is never reached; extrapolated values are
    returned as they are."""
    try:
        return fit_psychometric(df, core=core, levels=(name,), n_boot=0).thresholds[name].duration_ms
    except ValueError:
        return float("nan")


# --- hit and false-alarm curves, d' -----------------------------------------------------------

@dataclass(frozen=True)
class RateCurve:
    """P(say SPEECH) = floor + (ceiling - floor) * F(slope * (ln ms - location)).

    ceiling < floor describes a rate that falls with duration (false alarms that fade).
    """

    core: str
    location: float
    slope: float
    floor: float
    ceiling: float

    def rate(self, duration_ms) -> np.ndarray:
        x = np.log(np.asarray(duration_ms, dtype=float))
        return self.floor + (self.ceiling - self.floor) * core_cdf(self.core, self.slope * (x - self.location))


@_one_blas_thread
def fit_rate_curve(duration_ms, n_yes, n_trials, core: str = "logistic") -> RateCurve:
    x = np.log(np.asarray(duration_ms, dtype=float))
    k = np.asarray(n_yes, dtype=float)
    n = np.asarray(n_trials, dtype=float)
    rates = k / np.maximum(n, 1)

    def nll(theta):
        location, log_slope, floor, ceiling = theta
        p = floor + (ceiling - floor) * core_cdf(core, math.exp(log_slope) * (x - location))
        p = np.clip(p, _EPS, 1 - _EPS)
        return -np.sum(k * np.log(p) + (n - k) * np.log1p(-p))

    bounds = _bounds(x, (0.0, 1.0))[:2] + [(0.0, 1.0), (0.0, 1.0)]
    starts = [(loc, 0.0, rates[0], rates[-1]) for loc in np.quantile(x, [0.25, 0.5, 0.75])]
    best = min((optimize.minimize(nll, s, method="L-BFGS-B", bounds=bounds) for s in starts),
               key=lambda r: r.fun)
    location, log_slope, floor, ceiling = best.x
    return RateCurve(core, float(location), float(math.exp(log_slope)), float(floor), float(ceiling))


def rate_counts(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """SPEECH answers ("sum") and trials ("count") per duration, for speech trials ("hit")
    and non-speech trials ("false_alarm"), each where the results hold such trials."""
    frame = outcomes(df)
    counts = {}
    for name, is_speech in (("hit", True), ("false_alarm", False)):
        trials = frame[frame["is_speech"] == is_speech]
        if len(trials):
            counts[name] = trials.groupby("duration_ms")["says_speech"].agg(["sum", "count"])
    return counts


def rate_curves(df: pd.DataFrame, core: str = "logistic") -> dict[str, RateCurve]:
    """Fitted P(say SPEECH) for speech trials ("hit") and non-speech trials ("false_alarm")."""
    return {name: fit_rate_curve(counts.index.to_numpy(), counts["sum"], counts["count"], core)
            for name, counts in rate_counts(df).items() if len(counts) >= 2}


def _dprime(hits, n_speech, false_alarms, n_nonspeech):
    """d' and criterion c with the log-linear correction (add 0.5 to counts, 1 to totals),
    which keeps rates of 0 or 1 finite."""
    h = (np.asarray(hits) + 0.5) / (np.asarray(n_speech) + 1.0)
    f = (np.asarray(false_alarms) + 0.5) / (np.asarray(n_nonspeech) + 1.0)
    zh, zf = stats.norm.ppf(h), stats.norm.ppf(f)
    return zh - zf, -(zh + zf) / 2.0


def dprime_table(df: pd.DataFrame, n_boot: int = resampling.DEFAULT_N_BOOT,
                 confidence: float = resampling.DEFAULT_CONFIDENCE, seed: tuple = ()) -> pd.DataFrame:
    """Per duration: hit rate, false-alarm rate, d' (with a source-bootstrap interval) and c."""
    frame = outcomes(df)
    rows = []
    for duration, group in frame.groupby("duration_ms", sort=True):
        speech = group["is_speech"].to_numpy()
        yes = group["says_speech"].to_numpy(dtype=float)
        stats_rows = np.column_stack([speech * yes, speech, ~speech * yes, ~speech]).astype(float)
        clusters = resampling.clusters_of(group)
        sums = clusters.sums(stats_rows)
        hits, n_s, fas, n_n = sums.sum(axis=0)
        d, c = _dprime(hits, n_s, fas, n_n)
        lo = hi = float("nan")
        if n_s > 0 and n_n > 0 and n_boot > 0:
            weights = resampling.bootstrap_weights(clusters, n_boot, ("dprime", duration, *seed))
            b = weights @ sums
            valid = (b[:, 1] > 0) & (b[:, 3] > 0)
            d_boot, _ = _dprime(b[valid, 0], b[valid, 1], b[valid, 2], b[valid, 3])
            lo, hi = resampling.percentile_interval(d_boot, confidence)
        rows.append({"duration_ms": int(duration), "n_speech": int(n_s), "n_nonspeech": int(n_n),
                     "hit_rate": hits / n_s if n_s else float("nan"),
                     "false_alarm_rate": fas / n_n if n_n else float("nan"),
                     "dprime": float(d) if n_s and n_n else float("nan"),
                     "dprime_low": lo, "dprime_high": hi,
                     "criterion": float(c) if n_s and n_n else float("nan")})
    return pd.DataFrame(rows)
