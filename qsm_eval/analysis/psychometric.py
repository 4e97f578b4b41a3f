"""Psychometric curves: how performance grows with clip duration, and the duration thresholds.

Proportion correct is modelled against x = ln(duration_ms) as

    P(x) = guess + (1 - guess - lapse) * F(slope * (x - location))

with guess = 0.5 (speech vs non-speech is a two-alternative decision), F a logistic or a
Weibull core (Weibull in duration = Gumbel in log duration), and a free ceiling 1 - lapse:
audio models often stay well below perfect however long the clip, and a ceiling forced up
to 0.94 drags every threshold to longer durations. The lapse rate ranges up to 0.5 (chance)
and is fitted by maximum likelihood with the other parameters (vectorised Fisher scoring
finished by scipy L-BFGS-B; the bootstrap replicates by scoring alone), within the ranges
outside which psignifit 4's default priors vanish. psignifit's Beta(1, 10) lapse prior can
be asked for (``lapse_prior=PSIGNIFIT_LAPSE_PRIOR``, used to cross-check against psignifit),
but it is not the default: without psignifit's prior on the width of the rise beside it, it
trades a real ceiling of 0.7-0.8 for a rise that never ends, and on simulated observers with
a lapse of 0.2 and a shallow slope it put the median DT50 at 300 ms where the truth is 50.

Thresholds invert the fitted curve:
  DT50  the duration where performance is halfway between guess and ceiling (F = 0.5);
  DTnn  (nn > 50) the duration where proportion correct reaches nn/100, e.g. DT75 at 0.75.
A threshold the data do not reach (the level is at or above the ceiling, it lies beyond the
longest tested duration, or the model is at chance) has no value (None) and says "not
reached"; one below the shortest tested duration keeps its extrapolated value and says so.

What a reader must not miss is listed in ``PsychometricFit.flags`` (a ceiling below 0.94:
"never reliable", a parameter at a bound, "non-monotone" data, a model at chance) and, per
threshold, in ``Threshold.flags`` (what makes that value unusable: gates fail on them).
Intervals come from a seeded bootstrap that resamples whole sources within each dataset
(resampling.py), widened for few sources, and widened to the two tested durations around a
threshold when a step between them (at guess below, at the ceiling above) fits the data as
well as the curve does (``step_gaps``: the data cannot place the threshold between them);
``warnings`` say when that was needed.

Because a bias towards one answer hides inside plain accuracy, ``rate_curves`` also fits
P(say SPEECH) for speech trials (hit rate) and non-speech trials (false-alarm rate)
separately, and ``dprime_table`` gives the sensitivity d' and criterion c per duration.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
# scipy.special, not scipy.stats, for the distributions below: the same functions, and the
# pytest summary does not pay a third of a second for importing scipy.stats.
from scipy import optimize, special
from threadpoolctl import threadpool_limits

from qsm_eval.analysis import resampling
from qsm_eval.analysis.outcomes import outcomes

GUESS = 0.5
DEFAULT_LAPSE_BOUNDS = (0.0, 0.5)
PSIGNIFIT_LAPSE_PRIOR = (1.0, 10.0)   # Beta(a, b): psignifit 4's default prior on the lapse rate
RELIABLE_CEILING = 0.94          # a ceiling below this: the model is "never reliable"
DEFAULT_LEVELS = ("DT50", "DT75")
CORES = ("logistic", "weibull")
_SLOPE_BOUNDS = (0.05, 60.0)     # per ln(ms); 60 is a step within one tested duration
_EPS = 1e-12
_SCOUT_STEPS = 6                 # scoring steps from every start before keeping the best
# Significance of the checks that decide "non-monotone" and "at chance" (one-sided).
TREND_ALPHA = 0.01
CHANCE_ALPHA = 0.05
# A step between two tested durations that the data do not reject at this level (likelihood
# ratio test) leaves a threshold anywhere between them.
STEP_ALPHA = 0.05
# Fewer sources than this in a dataset and a source-bootstrap interval says little (a warning).
MIN_SOURCES = 4


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

    def core_at(self, duration_ms) -> np.ndarray:
        """F, the share of the way from guess to ceiling, at each duration."""
        x = np.log(np.asarray(duration_ms, dtype=float))
        return core_cdf(self.core, self.slope * (x - self.location))

    def core_level(self, level: float | None) -> float:
        """The value of F where P reaches ``level`` (None: halfway, 0.5); >= 1 is never."""
        if level is None:
            return 0.5
        span = self.ceiling - self.guess
        return (level - self.guess) / span if span > 1e-9 else math.inf

    def duration_at(self, level: float | None) -> float:
        """Duration (ms) where P reaches ``level``; None means halfway to the ceiling (DT50).
        inf when the curve never reaches it (a flat curve at chance never reaches anything)."""
        if self.ceiling - self.guess <= 1e-9:
            return math.inf
        f = self.core_level(level)
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


# --- maximum a posteriori -------------------------------------------------------------------

def _prior_terms(lapse, prior):
    """-log Beta(a, b) density of the lapse rate (up to a constant), its first and second
    derivatives; zeros without a prior (plain maximum likelihood)."""
    lapse = np.asarray(lapse, dtype=float)
    if prior is None:
        zero = np.zeros_like(lapse)
        return zero, zero, zero
    a, b = prior
    lam = np.clip(lapse, 1e-9, 1.0 - 1e-9)
    value = -(a - 1.0) * np.log(lam) - (b - 1.0) * np.log1p(-lam)
    first = -(a - 1.0) / lam + (b - 1.0) / (1.0 - lam)
    second = (a - 1.0) / lam ** 2 + (b - 1.0) / (1.0 - lam) ** 2
    return value, first, second


def _nll(theta, x, k, n, core, guess, prior):
    """Binomial negative log-posterior of (location, ln slope, lapse) and its gradient."""
    location, log_slope, lapse = theta
    slope = math.exp(log_slope)
    z = slope * (x - location)
    f = core_cdf(core, z)
    span = 1.0 - guess - lapse
    p = np.clip(guess + span * f, _EPS, 1.0 - _EPS)
    penalty, d_penalty, _ = _prior_terms(lapse, prior)
    value = -np.sum(k * np.log(p) + (n - k) * np.log1p(-p)) + float(penalty)
    dp = -(k / p - (n - k) / (1.0 - p))          # d nll / d p
    dz = dp * span * _core_pdf(core, z)          # d nll / d z
    grad = np.array([np.sum(dz * -slope), np.sum(dz * z), np.sum(dp * -f) + float(d_penalty)])
    return value, grad


def parameter_bounds(x: np.ndarray, lapse_bounds, core: str = "logistic") -> list[tuple[float, float]]:
    """Ranges of (location, ln slope, lapse): those outside which psignifit 4's default priors
    are zero. The location lies at most half the tested range of ln duration beyond it, and the
    curve's 5%-95% rise spans at most three times that range: a shallower curve is one the
    tested durations cannot tell from a flat line, and lets a bootstrap replicate trade its
    ceiling for a rise that never ends."""
    lo, hi = float(x.min()), float(x.max())
    span = max(hi - lo, 1.0)
    rise = _core_inverse(core, 0.95) - _core_inverse(core, 0.05)   # in units of slope * ln ms
    slope_min = max(_SLOPE_BOUNDS[0], rise / (3 * span))
    return [(lo - span / 2, hi + span / 2), (math.log(slope_min), math.log(_SLOPE_BOUNDS[1])),
            tuple(lapse_bounds)]


# The fits are tiny: multithreaded BLAS inside L-BFGS-B only spins (ten times slower on a
# busy machine), so the public fitting functions hold it to one thread.
_one_blas_thread = threadpool_limits.wrap(limits=1, user_api="blas")


def minimize_nll(starts, x, k, n, core, guess, bounds, prior=None):
    """The maximum-likelihood fit (scipy L-BFGS-B) from each start, best kept: the one-curve
    fitter, and the reference the batched fitter (fit_curves_batch) is checked against."""
    best = None
    for start in starts:
        res = optimize.minimize(_nll, start, args=(x, k, n, core, guess, prior), jac=True,
                                method="L-BFGS-B", bounds=bounds)
        if best is None or res.fun < best.fun:
            best = res
    return best


def start_points(x: np.ndarray, lapse_bounds, k=None, n=None) -> list[tuple[float, float, float]]:
    """Several starting points: the likelihood can have a flat shoulder far from the data.
    The lapse starts from what the longest durations show, when counts are given."""
    lo, hi = lapse_bounds
    lapse0 = min(0.02, hi)
    if k is not None:
        top = np.argsort(x)[-2:]
        lapse0 = 1.0 - float(np.sum(k[top])) / max(float(np.sum(n[top])), 1.0)
    lapse0 = float(np.clip(lapse0, lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo)))
    starts = [(loc, math.log(s), lapse0) for loc in np.quantile(x, [0.1, 0.5, 0.9]) for s in (1.0, 5.0)]
    # Near-step optima (mostly wrong below one duration, right above) have narrow basins: a
    # steep start in each gap between tested durations reaches them.
    levels = np.unique(x)
    starts += [(loc, math.log(25.0), lapse0) for loc in (levels[1:] + levels[:-1]) / 2]
    return starts


def _check_lapse_bounds(lapse_bounds, guess):
    if not 0.0 <= lapse_bounds[0] <= lapse_bounds[1] <= 1.0 - guess:
        raise ValueError(f"lapse bounds {tuple(lapse_bounds)} must satisfy 0 <= low <= high <= {1 - guess:g} "
                         f"(a lapse of {1 - guess:g} is a curve at chance)")


@_one_blas_thread
def fit_curve(duration_ms, n_correct, n_trials, core: str = "logistic",
              lapse_bounds=DEFAULT_LAPSE_BOUNDS, guess: float = GUESS,
              lapse_prior=None) -> Curve:
    """The most probable curve through counts of correct answers per duration
    (``lapse_prior=None``: maximum likelihood)."""
    x = np.log(np.asarray(duration_ms, dtype=float))
    k = np.asarray(n_correct, dtype=float)
    n = np.asarray(n_trials, dtype=float)
    core_cdf(core, np.zeros(1))  # rejects an unknown core with a clear message
    _check_lapse_bounds(lapse_bounds, guess)
    bounds = parameter_bounds(x, lapse_bounds, core)
    # The vectorised scorer picks the basin from every start at once; scipy finishes from it
    # (a dozen scipy runs, one per start, cost ten times more).
    theta, nll = fit_curves_batch(x, k[None], n[None], start_points(x, lapse_bounds, k, n), core, guess,
                                  bounds, lapse_prior)
    res = minimize_nll([tuple(theta[0])], x, k, n, core, guess, bounds, lapse_prior)
    best = res.x if res.fun < nll[0] else theta[0]
    return Curve(core, float(best[0]), float(math.exp(best[1])), float(best[2]), guess)


def _batch_nll(theta, x, k, n, core, guess, prior):
    z = np.exp(theta[:, 1:2]) * (x[None, :] - theta[:, 0:1])
    p = np.clip(guess + (1.0 - guess - theta[:, 2:3]) * core_cdf(core, z), _EPS, 1.0 - _EPS)
    return -np.sum(k * np.log(p) + (n - k) * np.log1p(-p), axis=1) + _prior_terms(theta[:, 2], prior)[0]


def _score_batch(x, k, n, theta0, core, guess, lower, upper, prior, max_iter: int = 50, tol: float = 1e-7):
    """Projected Fisher scoring with step halving, vectorised over rows of ``k`` and ``n``,
    row i started from ``theta0[i]``. Parameters sitting on a bound with the gradient pushing
    outwards are held there (active set). Returns (theta, nll, unconverged)."""
    theta = np.array(theta0, dtype=float)
    nll = _batch_nll(theta, x, k, n, core, guess, prior)
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
        _, d_prior, dd_prior = _prior_terms(t[:, 2], prior)
        grad[:, 2] += d_prior
        info[:, 2, 2] += dd_prior
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
            trial_nll = _batch_nll(trial, x, kk[pending], nn[pending], core, guess, prior)
            ok = trial_nll <= old[pending]
            new_theta[pending[ok]], new_nll[pending[ok]] = trial[ok], trial_nll[ok]
            pending = pending[~ok]
            if not len(pending):
                break
            scale /= 2.0
        idx = np.flatnonzero(active)
        theta[idx], nll[idx] = new_theta, new_nll
        # Converged, or creeping along a ridge (a step steepening towards the slope bound)
        # by less than a statistically meaningless 1e-7 nats per step.
        done = (decrement < 2 * tol) | ((old - new_nll) <= 0)
        active[idx[done]] = False
    return theta, nll, active


def fit_curves_batch(x, k, n, starts, core, guess, bounds, prior=None):
    """Most probable fits of many count sets at once (bootstrap replicates x durations).

    A per-replicate scipy call costs milliseconds of overhead; vectorised scoring costs
    microseconds per replicate, so every replicate is scored from each of ``starts`` and keeps
    its best fit (one start alone can stop in a local optimum).
    Returns (theta, nll) with theta rows (location, ln slope, lapse).
    """
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    lower = np.array([b[0] for b in bounds])
    upper = np.array([b[1] for b in bounds])
    # A few scoring steps from every (start, replicate) pair tell the basins apart; each
    # replicate goes on to convergence from its best one only.
    n_rep, n_start = len(k), len(starts)
    theta0 = np.repeat(np.asarray(starts, dtype=float), n_rep, axis=0)
    scouted, scouted_nll, _ = _score_batch(x, np.tile(k, (n_start, 1)), np.tile(n, (n_start, 1)),
                                           theta0, core, guess, lower, upper, prior, max_iter=_SCOUT_STEPS)
    best = np.argmin(scouted_nll.reshape(n_start, n_rep), axis=0) * n_rep + np.arange(n_rep)
    theta, nll, active = _score_batch(x, k, n, scouted[best], core, guess, lower, upper, prior)
    # Replicates left unconverged, or on a location or lower slope bound (a corner that
    # projected scoring may leave slowly), are polished by scipy from where they stand. A
    # curve steeper than a rise within the closest two tested durations is a step: it creeps
    # towards the slope bound, gaining next to nothing, with its thresholds already in place.
    edge = (theta[:, 0] <= lower[0] + 1e-9) | (theta[:, 0] >= upper[0] - 1e-9) | (theta[:, 1] <= lower[1] + 1e-9)
    rise = _core_inverse(core, 0.95) - _core_inverse(core, 0.05)
    step = np.exp(theta[:, 1]) * np.diff(np.unique(x)).min(initial=np.inf) > rise
    for i in np.flatnonzero(edge | (active & ~step)):
        res = minimize_nll([tuple(theta[i])], x, k[i], n[i], core, guess, bounds, prior)
        if res.fun < nll[i]:
            theta[i], nll[i] = res.x, res.fun
    return theta, nll


# --- checks of the data behind a curve --------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """A one-sided test on the counts: its statistic and p-value (NaN: nothing to test)."""

    statistic: float
    p_value: float

    def significant(self, alpha: float) -> bool:
        return bool(self.p_value < alpha)


def _small_sample_factor(n_clusters: int, n_strata: int) -> tuple[float, int]:
    """(variance factor, degrees of freedom) of a sandwich estimate over clusters drawn within
    strata: G / (G - H) and G - H, the usual finite-cluster correction."""
    dof = max(n_clusters - n_strata, 1)
    return n_clusters / dof, dof


def trend_check(x, cluster_k, cluster_n, n_strata: int = 1) -> Check:
    """Does proportion correct fall with ln duration? The least-squares slope of correct
    (0/1) on x with a cluster-robust (sandwich) standard error, so clips of one source do
    not count as independent evidence; p is the one-sided t probability of a slope this
    negative. The statistic is the slope (proportion correct per ln ms)."""
    n_d = cluster_n.sum(axis=0)
    total = n_d.sum()
    xbar = float(n_d @ x / total)
    dx = x - xbar
    sxx = float(n_d @ dx ** 2)
    if sxx <= 0:
        return Check(float("nan"), float("nan"))
    ybar = cluster_k.sum() / total
    slope = float(cluster_k.sum(axis=0) @ dx / sxx)
    scores = (cluster_k - cluster_n * (ybar + slope * dx)) @ dx     # per cluster
    factor, dof = _small_sample_factor(len(cluster_k), n_strata)
    se = math.sqrt(factor * float(scores @ scores)) / sxx
    if se <= 0:
        return Check(slope, 1.0 if slope >= 0 else 0.0)
    return Check(slope, float(special.stdtr(dof, slope / se)))


def chance_check(curve: Curve, durations, cluster_k, cluster_n, n_strata: int = 1) -> Check:
    """Is the model above chance anywhere? The likelihood ratio of the fitted curve against
    P = guess at every duration, divided by the clusters' design effect (how much more the
    per-source totals vary than independent trials would), against chi-square with two
    degrees of freedom (a curve's location and height are both fitted to noise): on 300
    simulated chance observers in each of four designs (4 to 48 sources per stratum, 24 to 480
    trials per duration) 2 to 3% exceeded its 95% point. p is the probability of a ratio this
    large at chance."""
    k, n = cluster_k.sum(axis=0), cluster_n.sum(axis=0)
    p = np.clip(curve.p_correct(durations), _EPS, 1 - _EPS)
    g = curve.guess
    ratio = 2.0 * float(np.sum(k * np.log(p / g) + (n - k) * np.log((1 - p) / (1 - g))))
    statistic = max(ratio, 0.0) / design_effect(p, cluster_k, cluster_n, n_strata)
    return Check(statistic, float(special.chdtrc(2, statistic)))


def design_effect(p, cluster_k, cluster_n, n_strata: int = 1) -> float:
    """How much more the clusters' totals of correct answers vary about a curve's proportions
    ``p`` (one per duration) than independent trials would (at least 1): likelihood ratios
    over clustered trials are divided by it."""
    residual = cluster_k.sum(axis=1) - cluster_n @ p
    variance = float(np.sum(cluster_n @ (p * (1 - p))))
    factor, _ = _small_sample_factor(len(cluster_k), n_strata)
    return max(1.0, factor * float(residual @ residual) / variance) if variance > 0 else 1.0


@dataclass(frozen=True)
class StepGap:
    """Two neighbouring tested durations between which a step fits the data as well as the
    curve does: at guess up to ``below``, at ``ceiling`` from ``above`` on."""

    below: float
    above: float
    ceiling: float
    statistic: float   # likelihood ratio of the step against the curve, over the design effect


def step_gaps(curve: Curve, durations, cluster_k, cluster_n, n_strata: int = 1,
              lapse_bounds=DEFAULT_LAPSE_BOUNDS, alpha: float = STEP_ALPHA) -> list[StepGap]:
    """The gaps between tested durations where the data cannot tell the curve from a step.

    A step (at guess up to one tested duration, at a fitted ceiling from the next on) is the
    curve's limit as its slope grows without bound, and it predicts the same counts wherever
    between the two durations it stands. When its likelihood ratio against the fitted curve
    (over the clusters' design effect) stays below the chi-square(1) point of ``alpha``, every
    duration of the gap is inside the profile-likelihood confidence set of a threshold the step
    reaches: an interval must span the gap, however the bootstrap replicates fall."""
    durations = np.asarray(durations, dtype=float)
    k, n = cluster_k.sum(axis=0), cluster_n.sum(axis=0)
    p_fit = np.clip(curve.p_correct(durations), _EPS, 1 - _EPS)
    fit_ll = float(np.sum(k * np.log(p_fit) + (n - k) * np.log1p(-p_fit)))
    deff = design_effect(p_fit, cluster_k, cluster_n, n_strata)
    critical = float(special.chdtri(1, alpha))
    top = 1.0 - lapse_bounds[0]
    bottom = max(curve.guess, 1.0 - lapse_bounds[1])
    gaps = []
    for i in range(len(durations) - 1):
        ceiling = float(np.clip(k[i + 1:].sum() / max(n[i + 1:].sum(), 1.0), bottom, top))
        p_step = np.clip(np.where(np.arange(len(durations)) <= i, curve.guess, ceiling), _EPS, 1 - _EPS)
        step_ll = float(np.sum(k * np.log(p_step) + (n - k) * np.log1p(-p_step)))
        statistic = max(2.0 * (fit_ll - step_ll), 0.0) / deff
        if statistic < critical:
            gaps.append(StepGap(float(durations[i]), float(durations[i + 1]), ceiling, statistic))
    return gaps


# --- thresholds with bootstrap intervals --------------------------------------------------------

@dataclass
class Threshold:
    name: str
    level: float | None          # target proportion correct; None = halfway to the ceiling
    duration_ms: float | None    # None: not reached (or not estimable); see flags
    ci_low: float
    ci_high: float
    flags: list[str] = field(default_factory=list)     # what makes the value unusable (gates fail)
    warnings: list[str] = field(default_factory=list)  # what limits the interval

    @property
    def reached(self) -> bool:
        return self.duration_ms is not None

    @property
    def flag(self) -> str:
        """The flags as one line ("" when the value stands)."""
        return "; ".join(self.flags)

    def to_dict(self) -> dict:
        return {**asdict(self), "flag": self.flag}


@dataclass(frozen=True)
class Ceiling:
    """The fitted ceiling 1 - lapse with its interval."""

    value: float
    low: float
    high: float

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
    ceiling: Ceiling = None
    flags: list[str] = field(default_factory=list)     # about the whole curve
    warnings: list[str] = field(default_factory=list)  # every threshold's interval warnings
    trend: Check = None          # slope of proportion correct on ln duration (non-monotone test)
    chance: Check = None         # curve against chance
    lapse_prior: tuple[float, float] | None = None
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
        return float(special.chdtrc(dof, self.deviance)) if dof > 0 else float("nan")

    def to_dict(self) -> dict:
        return {
            "core": self.curve.core, "guess": self.curve.guess, "lapse": self.curve.lapse,
            "ceiling": self.ceiling.to_dict() if self.ceiling else None,
            "location_ln_ms": self.curve.location, "slope_per_ln_ms": self.curve.slope,
            "lapse_bounds": list(self.lapse_bounds),
            "lapse_prior": list(self.lapse_prior) if self.lapse_prior else None,
            "n_clusters": self.n_clusters, "deviance": self.deviance, "deviance_p": self.deviance_p,
            "n_boot": self.n_boot, "confidence": self.confidence,
            "flags": list(self.flags), "warnings": list(self.warnings),
            "trend": asdict(self.trend) if self.trend else None,
            "chance": asdict(self.chance) if self.chance else None,
            "points": [{"duration_ms": float(d), "n_correct": int(k), "n_trials": int(n)}
                       for d, k, n in zip(self.durations_ms, self.n_correct, self.n_trials)],
            "thresholds": {name: t.to_dict() for name, t in self.thresholds.items()},
        }


def _bound_flags(curve: Curve, bounds, lapse_bounds, guess) -> list[str]:
    """A parameter the fit left on a bound of its range. A lapse of 0 is not one: a model that
    is never wrong at long durations has ceiling 1, the edge of what a ceiling can be, not a
    limit the fitter imposed. A lapse at the top is "at chance" (0.5) or a user's bound."""
    flags = []
    (loc_lo, loc_hi), (slope_lo, slope_hi), (_, lapse_hi) = bounds
    tol = 1e-6
    if curve.location <= loc_lo + tol or curve.location >= loc_hi - tol:
        flags.append(f"location at its bound ({math.exp(curve.location):.3g} ms)")
    log_slope = math.log(curve.slope)
    if log_slope <= slope_lo + tol:
        flags.append(f"slope at its lower bound {curve.slope:g} per ln ms (a flat curve)")
    elif log_slope >= slope_hi - tol:
        flags.append(f"slope at its upper bound {curve.slope:g} per ln ms (a step between tested durations)")
    if curve.lapse >= lapse_hi - tol and lapse_hi < 1.0 - guess:
        flags.append(f"lapse at its upper bound {lapse_hi:g} (ceiling held at {1 - lapse_hi:.2f})")
    return flags


def _step_bracket(gaps: list[StepGap], point: float, level: float | None, lo: float, hi: float):
    """The gap around a threshold's point value where a step that reaches the level fits as
    well as the curve, when the interval [lo, hi] does not span it already; None otherwise."""
    for gap in gaps:
        reaches = level is None or level < gap.ceiling
        if reaches and gap.below < point < gap.above and (lo > gap.below or hi < gap.above):
            return gap
    return None


def small_sample_widening(confidence: float, n_clusters: int, n_strata: int) -> float:
    """How much wider than its percentiles a cluster bootstrap interval must be with few
    clusters: the bootstrap variance of G clusters drawn within H strata is (G - H)/G of the
    true one, and the statistic is t-distributed with G - H degrees of freedom, so the
    half-widths grow by sqrt(G / (G - H)) * t_{G-H} / z (1.44 for 8 sources, 1.05 for 48)."""
    factor, dof = _small_sample_factor(n_clusters, n_strata)
    tail = (1.0 - confidence) / 2.0
    return float(math.sqrt(factor) * special.stdtrit(dof, 1.0 - tail) / special.ndtri(1.0 - tail))


def widened_interval(replicates, point: float, confidence: float, widening: float) -> tuple[float, float]:
    """The percentile interval of ``replicates``, its half-widths stretched by ``widening``
    about ``point`` (about the replicates' median when the point is not finite). Stretching
    the stable 2.5% and 97.5% points, rather than reading far tails off a few hundred
    replicates, keeps the interval steady from one seed to the next."""
    values = np.asarray(replicates, dtype=float)
    lo, hi = resampling.percentile_interval(values, confidence)
    if not math.isfinite(point):
        finite = values[np.isfinite(values)]
        point = float(np.median(finite)) if len(finite) else math.nan
    if math.isfinite(point):
        lo = point - widening * (point - lo) if lo <= point else lo
        hi = point + widening * (hi - point) if hi >= point else hi
    return float(lo), float(hi)


def _log_interval(durations, point: float, confidence: float, widening: float) -> tuple[float, float]:
    """``widened_interval`` of durations, taken on ln duration (0 and inf stay as they are)."""
    with np.errstate(divide="ignore"):
        logs = np.log(np.asarray(durations, dtype=float))
        centre = math.log(point) if point > 0 else -math.inf
    lo, hi = widened_interval(logs, centre, confidence, widening)
    return float(np.exp(lo)), float(np.exp(hi))


def _threshold(name: str, curve: Curve, boot_curves, durations, confidence, widening: float,
               blocking: list[str], non_monotone: bool, at_chance: bool, gaps: list[StepGap]) -> Threshold:
    """One threshold: its value or why there is none, and its interval. ``blocking`` are the
    curve's flags that make any threshold of it unusable; ``gaps`` those between tested
    durations where a step fits as well as the curve (step_gaps)."""
    level = level_of(name)
    tested = (float(durations[0]), float(durations[-1]))
    point = curve.duration_at(level)
    flags = list(blocking)
    warnings = []
    if non_monotone:
        value = None
        flags.insert(0, "not estimable: non-monotone")
    elif at_chance:
        value = None
        flags.insert(0, "not reached: the model is at chance")
    elif level is not None and level >= curve.ceiling:
        value = None
        flags.insert(0, f"not reached: ceiling {curve.ceiling:.2f} is at or below {level:g}")
    elif not math.isfinite(point) or point > tested[1]:
        value = None
        flags.insert(0, f"not reached by {tested[1]:g} ms, the longest tested duration")
    else:
        value = point
        if point < tested[0]:
            flags.insert(0, f"below tested range ({tested[0]:g} ms): extrapolated")
    lo = hi = float("nan")
    if boot_curves:
        lo, hi = _log_interval([c.duration_at(level) for c in boot_curves], point, confidence, widening)
        gap = _step_bracket(gaps, point, level, lo, hi)
        if gap is not None:
            lo, hi = min(lo, gap.below), max(hi, gap.above)
            warnings.append(f"{name} lies between the tested durations {gap.below:g} and {gap.above:g} ms, "
                            f"which the data cannot place it between more finely: its interval spans them")
    return Threshold(name, level, value, lo, hi, flags, warnings)


def _counts(frame: pd.DataFrame):
    """Durations, per-cluster correct and trial counts per duration, and the clusters."""
    durations, dur_index = np.unique(frame["duration_ms"].to_numpy(dtype=float), return_inverse=True)
    if len(durations) < 2:
        raise ValueError(f"a psychometric fit needs at least two durations; the data hold "
                         f"{', '.join(f'{d:g} ms' for d in durations) or 'none'}")
    onehot = np.eye(len(durations))[dur_index]
    correct = frame["correct"].to_numpy(dtype=float)
    clusters = resampling.clusters_of(frame)
    return durations, clusters.sums(onehot * correct[:, None]), clusters.sums(onehot), clusters


@_one_blas_thread
def fit_psychometric(df: pd.DataFrame, core: str = "logistic", levels=DEFAULT_LEVELS,
                     lapse_bounds=DEFAULT_LAPSE_BOUNDS, n_boot: int = resampling.DEFAULT_N_BOOT,
                     confidence: float = resampling.DEFAULT_CONFIDENCE,
                     seed: tuple = (), lapse_prior=None) -> PsychometricFit:
    """Fit proportion correct vs duration for a results frame, with source-bootstrap intervals.

    ``levels`` are threshold names (DT50, DT75, DT90...); ``seed`` parts make the bootstrap
    reproducible (the same frame and seed give the same intervals).
    """
    frame = outcomes(df)
    durations, cluster_k, cluster_n, clusters = _counts(frame)
    n_strata = len(np.unique(clusters.cluster_stratum))
    k, n = cluster_k.sum(axis=0), cluster_n.sum(axis=0)
    curve = fit_curve(durations, k, n, core, lapse_bounds, lapse_prior=lapse_prior)
    x = np.log(durations)
    bounds = parameter_bounds(x, lapse_bounds, core)

    trend = trend_check(x, cluster_k, cluster_n, n_strata)
    chance = chance_check(curve, durations, cluster_k, cluster_n, n_strata)
    non_monotone, at_chance = trend.significant(TREND_ALPHA), not chance.significant(CHANCE_ALPHA)
    # Flags that make every threshold of the curve unusable, then those that only describe it.
    blocking = []
    if non_monotone:
        blocking.append(f"non-monotone: proportion correct falls with duration "
                        f"({trend.statistic:+.3f} per ln ms, one-sided p {trend.p_value:.2g})")
    if at_chance:
        blocking.append(f"at chance: the curve is not reliably above {curve.guess:g} "
                        f"(p {chance.p_value:.2g})")
    at_bound = _bound_flags(curve, bounds, lapse_bounds, curve.guess)
    blocking += [f for f in at_bound if not f.startswith("slope at its upper")]
    flags = list(blocking)
    if not at_chance and curve.ceiling < RELIABLE_CEILING:
        flags.append(f"never reliable: ceiling {curve.ceiling:.2f}")
    flags += [f for f in at_bound if f.startswith("slope at its upper")]   # a step: see warnings

    boot_curves = []
    if n_boot > 0:
        weights = resampling.bootstrap_weights(clusters, n_boot, ("psychometric", core, *seed))
        # A duration a replicate did not draw has n = 0 and adds nothing to its likelihood.
        starts = [(curve.location, math.log(curve.slope), curve.lapse)] + start_points(x, lapse_bounds, k, n)
        theta, _ = fit_curves_batch(x, weights @ cluster_k, weights @ cluster_n, starts, core,
                                    curve.guess, bounds, lapse_prior)
        boot_curves = [Curve(core, float(t[0]), float(math.exp(t[1])), float(t[2]), curve.guess)
                       for t in theta]
    widening = small_sample_widening(confidence, clusters.n_clusters, n_strata)
    if boot_curves:
        lo, hi = widened_interval([c.ceiling for c in boot_curves], curve.ceiling, confidence, widening)
        ceiling = Ceiling(curve.ceiling, max(lo, curve.guess), min(hi, 1.0))
    else:
        ceiling = Ceiling(curve.ceiling, float("nan"), float("nan"))
    gaps = step_gaps(curve, durations, cluster_k, cluster_n, n_strata, lapse_bounds) if boot_curves else []
    thresholds = {name: _threshold(name, curve, boot_curves, durations, confidence, widening, blocking,
                                   non_monotone, at_chance, gaps)
                  for name in levels}
    fewest = int(np.bincount(clusters.cluster_stratum).min())
    if boot_curves and fewest < MIN_SOURCES:
        # A stratum of one source never varies in the bootstrap; of two or three, the widening
        # for few sources rests on a normal approximation they cannot support.
        note = (f"only {fewest} source(s) in a dataset: too few for a source-bootstrap interval, "
                f"which is a rough guide at best")
        for t in thresholds.values():
            t.warnings.append(note)
    warnings = list(dict.fromkeys(w for t in thresholds.values() for w in t.warnings))
    return PsychometricFit(curve, thresholds, durations, k.astype(int), n.astype(int),
                           clusters.n_clusters, len(boot_curves), confidence, tuple(lapse_bounds),
                           ceiling, flags, warnings, trend, chance, lapse_prior, boot_curves)


def threshold_ms(df: pd.DataFrame, name: str, core: str = "logistic") -> float:
    """The point value of one threshold (e.g. "DT75") for gates: NaN when no curve can be fitted
    (fewer than two durations) or the threshold is flagged (non-monotone data, a parameter at
    a bound), inf when it is not reached; a value below the tested range is returned as it is."""
    try:
        t = fit_psychometric(df, core=core, levels=(name,), n_boot=0).thresholds[name]
    except ValueError:
        return float("nan")
    if t.duration_ms is None:
        return math.inf if t.flags[0].startswith("not reached") else float("nan")
    return float("nan") if any(not f.startswith("below tested range") for f in t.flags) else t.duration_ms


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

    bounds = parameter_bounds(x, (0.0, 1.0))[:2] + [(0.0, 1.0), (0.0, 1.0)]
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
    zh, zf = special.ndtri(h), special.ndtri(f)
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
