"""Source-clustered, seeded bootstrap resampling shared by every interval in qsm-eval.

Clips cut from the same recording are not independent, so a bootstrap replicate draws whole
sources (``source_id``) with replacement, within each dataset (the design fixes how many
sources each dataset contributes). A replicate is represented by integer weights: how many
times each cluster was drawn. Any statistic that is a function of per-cluster sums (counts of
hits, misses, squared errors...) is then computed for every replicate at once by
``weights @ cluster_sums``, which keeps thousands of replicates cheap.

Rows without a source_id are their own cluster, which reduces to the ordinary bootstrap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from qsm_eval.seeding import stable_rng

DEFAULT_N_BOOT = 1000
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Clusters:
    """Which cluster each row belongs to, and which stratum each cluster belongs to."""

    row_cluster: np.ndarray      # (n_rows,) cluster index per row
    cluster_stratum: np.ndarray  # (n_clusters,) stratum index per cluster

    @property
    def n_clusters(self) -> int:
        return len(self.cluster_stratum)

    @property
    def repeats(self) -> bool:
        """True when some cluster holds more than one row (the rows are not independent)."""
        return self.n_clusters < len(self.row_cluster)

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Per-cluster sums of row values: (n_rows, k) -> (n_clusters, k)."""
        values = np.asarray(values, dtype=float)
        flat = values.ndim == 1
        values = values.reshape(len(values), -1)
        out = np.zeros((self.n_clusters, values.shape[1]))
        np.add.at(out, self.row_cluster, values)
        return out[:, 0] if flat else out


# What identifies a row's content, for the canonical order (the first columns present decide,
# the answer columns break ties between rows that share an identity).
IDENTITY = ("set_sha256", "segment_set", "segment_id", "case_id", "audio_path", "model", "duration_ms",
            "true_label", "pred_label", "error", "n_audio_tokens", "p_speech")


def canonical_rank(df: pd.DataFrame) -> np.ndarray:
    """Each row's position in a canonical order of the rows, by content (IDENTITY columns), so
    the same answers rank alike however a run delivered them (plain, or -n 2 in any order)."""
    columns = [c for c in IDENTITY if c in df]
    if not columns:
        return np.arange(len(df))
    keys = [pd.factorize(df[c].astype(str), sort=True)[0] for c in reversed(columns)]
    order = np.lexsort(keys)  # the last key is the primary one
    rank = np.empty(len(df), dtype=np.int64)
    rank[order] = np.arange(len(df))
    return rank


def clusters_of(df: pd.DataFrame, cluster: str | None = "source_id",
                stratum: str | None = "dataset") -> Clusters:
    """Clusters of a results frame: one per (stratum, source) pair; rows lacking a source alone.

    Clusters are numbered in a canonical order (sorted keys; a row without a source is keyed
    by its canonical rank), so bootstrap draws, and the intervals they give, do not depend on
    the order of the rows.
    """
    n = len(df)
    strata = (df[stratum].astype(object).where(df[stratum].notna(), "").astype(str)
              if stratum and stratum in df else pd.Series("", index=df.index))
    if cluster and cluster in df:
        sources = df[cluster].astype(object)
        missing = sources.isna().to_numpy()
    else:
        sources = pd.Series("", index=df.index)
        missing = np.ones(n, dtype=bool)
    names = sources.astype(str).to_numpy(dtype=object)
    if missing.any():
        # \x01 sorts before any source name; the rank is zero-padded so it sorts as a number.
        names[missing] = np.char.add("\x01row", np.char.zfill(canonical_rank(df)[missing].astype(str), 12))
    keys = strata.to_numpy(dtype=object) + "\x1f" + names
    codes, uniques = pd.factorize(pd.Series(keys, dtype=object), sort=True)
    cluster_strata = [u.split("\x1f", 1)[0] for u in uniques]
    stratum_codes, _ = pd.factorize(pd.Series(cluster_strata, dtype=object), sort=True)
    return Clusters(row_cluster=np.asarray(codes, dtype=np.int64),
                    cluster_stratum=np.asarray(stratum_codes, dtype=np.int64))


def bootstrap_weights(clusters: Clusters, n_boot: int, seed_parts: tuple) -> np.ndarray:
    """(n_boot, n_clusters) draw counts: each stratum resamples its own clusters with replacement.

    ``seed_parts`` feed seeding.stable_rng, so the same inputs give the same intervals.
    """
    rng = stable_rng("bootstrap", *seed_parts)
    weights = np.zeros((n_boot, clusters.n_clusters), dtype=np.int64)
    for stratum in np.unique(clusters.cluster_stratum):
        members = np.flatnonzero(clusters.cluster_stratum == stratum)
        k = len(members)
        weights[:, members] = rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot)
    return weights


def percentile_interval(replicates: np.ndarray, confidence: float = DEFAULT_CONFIDENCE,
                        ) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates; NaN replicates (statistic undefined) dropped.

    Infinite replicates are kept: an interval end that is +inf says the data allow that the
    quantity is not reached at all.
    """
    values = np.asarray(replicates, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2.0
    # Interpolating between two infinite replicates gives NaN: take order statistics then.
    method = "linear" if np.isfinite(values).all() else "inverted_cdf"
    lo, hi = np.quantile(values, [tail, 1.0 - tail], method=method)
    return float(lo), float(hi)
