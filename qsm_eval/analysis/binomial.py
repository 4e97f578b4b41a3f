"""Exact binomial tails, for the below-chance alarm and McNemar's test (no scipy needed: the
pytest summary must not pay for importing scipy.stats)."""

from __future__ import annotations

import math


def cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed exactly in log space."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    log_terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
                 for i in range(k + 1)]
    top = max(log_terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in log_terms))


def sign_test(a: int, b: int) -> float:
    """Two-sided exact sign test of a against b successes at 1/2 (McNemar's exact test on the
    discordant pairs); 1.0 without discordant pairs."""
    n = a + b
    return 1.0 if n == 0 else min(1.0, 2.0 * cdf(min(a, b), n, 0.5))
