"""Compare two finished runs on the same segments: who is right where the other is wrong.

    qsm-eval compare RUN_A RUN_B [--out DIR]

Cases are paired by content: on (set_sha256, segment_id) when both runs record the hash of
their segment set's metadata (two checkouts or machines of one set pair up; two different
sets do not), else on segment_id, else on audio_path. Harness errors are not answers: a pair
where either run has one is left out (and counted).

One quantity decides: the difference of balanced accuracy, B - A. For the whole run, each
dataset and each duration the comparison gives both balanced accuracies, their difference with
a paired bootstrap interval that resamples whole sources, and the bootstrap p-value of that
difference, Holm-adjusted within datasets and within durations. The winner is the run with the
higher balanced accuracy where the adjusted p-value is below 0.05; where that p-value lies
within Monte Carlo error of 0.05 (too few replicates to tell) the verdict is "inconclusive".
The exact McNemar test on the discordant pairs (accuracy: the cases exactly one run got right)
is reported beside it.

Files (compare.json, compare.csv, psychometric and rate plots) go to DIR, by default a
directory beside RUN_A named after both run directories and a hash of their paths, so
comparing another pair never overwrites this one; files an earlier compare left there and this
one does not write are removed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from qsm_eval.analysis import binomial, formatting, resampling
from qsm_eval.analysis.metrics import balanced_from_counts
from qsm_eval.analysis.outcomes import fit_rows, outcomes
from qsm_eval.analysis.runs import Run, load_run, output_dir

ALPHA = 0.05
MC_Z = 2.0   # Monte Carlo standard errors within which a bootstrap p-value is too close to call
OUTPUTS = ("compare.csv", "compare.json", "psychometric.png", "psychometric.svg", "rates.png", "rates.svg")
_CARRIED = ("true_label", "duration_ms", "dataset", "source_id", "condition", "snr_db")


class PairingError(ValueError):
    """Two runs that cannot be paired case by case."""


# --- pairing ------------------------------------------------------------------------------------

def pairing_keys(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """The columns that identify a segment by content in both runs."""
    def complete(col):
        return col in a and col in b and a[col].notna().all() and b[col].notna().all()

    if complete("set_sha256") and complete("segment_id"):
        return ["set_sha256", "segment_id"]
    if complete("segment_id"):
        return ["segment_id"]
    if complete("audio_path"):
        return ["audio_path"]
    raise PairingError("the runs share no complete segment identity (set_sha256+segment_id, "
                       "segment_id or audio_path); they cannot be compared case by case")


def pair_runs(a: pd.DataFrame, b: pd.DataFrame, names=("A", "B")) -> pd.DataFrame:
    """One row per segment answered in both runs, with correct_a and correct_b."""
    keys = pairing_keys(a, b)
    fa, fb = outcomes(a, names[0]), outcomes(b, names[1])
    for frame, name in ((fa, names[0]), (fb, names[1])):
        dup = frame.duplicated(keys)
        if dup.any():
            raise PairingError(f"{name}: {int(dup.sum())} duplicate case(s) on {'+'.join(keys)}; "
                               f"a run holds each segment once")
    carried = [c for c in _CARRIED if c in fa and c not in keys]
    # audio_path, when both runs have it and it is not the key, must agree on every pair.
    check_path = "audio_path" in fa and "audio_path" in fb and "audio_path" not in keys
    extra = ["audio_path"] if check_path else []
    left = fa[keys + carried + extra + ["correct", "harness_error"]].rename(
        columns={"correct": "correct_a", "harness_error": "error_a"})
    right = fb[keys + ["true_label"] + extra + ["correct", "harness_error"]].rename(
        columns={"true_label": "true_label_b", "correct": "correct_b", "harness_error": "error_b",
                 **{c: c + "_b" for c in extra}})
    paired = left.merge(right, on=keys, validate="one_to_one")
    if paired.empty:
        hint = (" (set_sha256 differs: the runs evaluated different segment sets, or different "
                "versions of one)" if keys[0] == "set_sha256" else "")
        raise PairingError(f"{names[0]} and {names[1]} have no segment in common on {'+'.join(keys)}{hint}")
    mismatch = paired["true_label"] != paired["true_label_b"]
    if "audio_path_b" in paired:
        mismatch |= paired["audio_path"].notna() & paired["audio_path_b"].notna() & (
            paired["audio_path"] != paired["audio_path_b"])
    if mismatch.any():
        raise PairingError(f"{int(mismatch.sum())} paired case(s) differ in true_label or audio_path "
                           f"between {names[0]} and {names[1]}: these runs are not on the same segments")
    errors = paired["error_a"] | paired["error_b"]
    answered = paired[~errors].drop(columns=[c for c in ("true_label_b", "audio_path_b", "error_a", "error_b")
                                             if c in paired])
    answered.attrs["keys"] = keys
    answered.attrs["unpaired"] = (len(fa) - len(paired), len(fb) - len(paired))
    answered.attrs["harness_errors"] = int(errors.sum())
    return answered


# --- the tests ----------------------------------------------------------------------------------

def mcnemar_exact(correct_a, correct_b) -> dict:
    """Exact McNemar test: two-sided binomial test of the discordant pairs against 1/2."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    return {"a_only": a_only, "b_only": b_only, "both_right": int(np.sum(a & b)),
            "both_wrong": int(np.sum(~a & ~b)), "p_value": binomial.sign_test(a_only, b_only)}


def holm(p_values) -> np.ndarray:
    """Holm step-down adjustment of a family of p-values."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1.0)
    return out


@dataclass
class Comparison:
    scope: str
    n: int
    balanced_accuracy_a: float
    balanced_accuracy_b: float
    difference: float          # B - A, balanced accuracy: the quantity the verdict is about
    difference_low: float
    difference_high: float
    difference_p: float        # paired source-bootstrap p-value of the difference (two-sided)
    difference_p_adjusted: float   # Holm within the family (datasets, durations)
    monte_carlo_error: float   # standard error of difference_p_adjusted from the finite replicates
    a_only: int                # McNemar, on accuracy: cases only A got right
    b_only: int
    both_right: int
    both_wrong: int
    p_value: float             # exact McNemar p (reported beside the verdict, not deciding it)
    p_adjusted: float          # McNemar p, Holm within the family
    winner: str                # the better run's name, "no difference", or "inconclusive"

    def to_dict(self) -> dict:
        return asdict(self)


def bootstrap_p(replicates: np.ndarray) -> tuple[float, float]:
    """Two-sided bootstrap p-value of 'no difference' (twice the share of replicates on the far
    side of zero, counting half of those at zero) and its Monte Carlo standard error."""
    values = replicates[~np.isnan(replicates)]
    if not len(values):
        return math.nan, math.nan
    tail = min(np.mean(values < 0) + 0.5 * np.mean(values == 0), np.mean(values > 0) + 0.5 * np.mean(values == 0))
    tail = max(float(tail), 0.5 / len(values))  # a finite bootstrap cannot show a tail below one replicate
    return min(1.0, 2 * tail), 2 * math.sqrt(tail * (1 - tail) / len(values))


def compare_group(paired: pd.DataFrame, scope: str, n_boot: int, confidence: float,
                  seed: tuple) -> Comparison:
    speech = paired["true_label"].to_numpy() == "SPEECH"
    ca, cb = paired["correct_a"].to_numpy(), paired["correct_b"].to_numpy()
    columns = np.column_stack([speech, ~speech, speech & ca, ~speech & ca, speech & cb, ~speech & cb]).astype(float)
    clusters = resampling.clusters_of(paired)
    sums = clusters.sums(columns)

    def ba_pair(c):
        return (balanced_from_counts(c[..., 2], c[..., 0], c[..., 3], c[..., 1]),
                balanced_from_counts(c[..., 4], c[..., 0], c[..., 5], c[..., 1]))

    ba_a, ba_b = ba_pair(sums.sum(axis=0))
    lo = hi = p = mc = math.nan
    if n_boot > 0:
        # Paired: one set of source draws serves both runs in each replicate.
        boot_a, boot_b = ba_pair(resampling.bootstrap_weights(clusters, n_boot, ("compare", scope, *seed)) @ sums)
        lo, hi = resampling.percentile_interval(boot_b - boot_a, confidence)
        p, mc = bootstrap_p(boot_b - boot_a)
    test = mcnemar_exact(ca, cb)
    return Comparison(scope, len(paired), float(ba_a), float(ba_b), float(ba_b - ba_a), lo, hi, p, p, mc,
                      test["a_only"], test["b_only"], test["both_right"], test["both_wrong"],
                      test["p_value"], test["p_value"], "")


def verdict(row: Comparison, name_a: str, name_b: str) -> str:
    """The winner by balanced accuracy, or why there is none."""
    p, mc = row.difference_p_adjusted, row.monte_carlo_error
    if math.isnan(p) or row.difference == 0:
        return "no difference"
    if abs(p - ALPHA) <= MC_Z * mc:
        return "inconclusive"
    if p >= ALPHA:
        return "no difference"
    return name_b if row.difference > 0 else name_a


def compare_runs(a: Run, b: Run, n_boot: int = resampling.DEFAULT_N_BOOT,
                 confidence: float = resampling.DEFAULT_CONFIDENCE) -> tuple[list[Comparison], pd.DataFrame]:
    """Comparisons overall, per dataset and per duration (Holm-adjusted within each family)."""
    paired = pair_runs(a.df, b.df, (a.name, b.name))
    seed = (a.name, b.name)
    families = [[compare_group(paired, "all", n_boot, confidence, seed)]]
    for column, label in (("dataset", "dataset={}"), ("duration_ms", "duration={}ms")):
        if column in paired and paired[column].nunique() > 1:
            families.append([compare_group(group, label.format(value), n_boot, confidence, seed)
                             for value, group in paired.groupby(column, sort=True)])
    rows = []
    for family in families:
        ps = np.array([r.difference_p for r in family])
        adjusted = holm(np.nan_to_num(ps, nan=1.0))
        for row, p_adj, mcnemar_adj in zip(family, adjusted, holm([r.p_value for r in family])):
            # Holm multiplies a p-value by its rank's factor; its Monte Carlo error grows alike.
            factor = p_adj / row.difference_p if row.difference_p > 0 else 1.0
            row.difference_p_adjusted = float(p_adj) if not math.isnan(row.difference_p) else math.nan
            row.monte_carlo_error = float(row.monte_carlo_error * factor)
            row.p_adjusted = float(mcnemar_adj)
            row.winner = verdict(row, a.name, b.name)
            rows.append(row)
    return rows, paired


# --- the command ----------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_a", metavar="RUN_A", help="run directory (or results parquet) of the first model")
    parser.add_argument("run_b", metavar="RUN_B", help="run directory (or results parquet) of the second model")
    parser.add_argument("--out", help="where to write compare files (default: a directory beside RUN_A "
                                      "named after both runs)")
    parser.add_argument("--n-boot", type=int, default=resampling.DEFAULT_N_BOOT,
                        help=f"bootstrap replicates (default {resampling.DEFAULT_N_BOOT})")
    parser.add_argument("--confidence", type=float, default=resampling.DEFAULT_CONFIDENCE,
                        help=f"interval level (default {resampling.DEFAULT_CONFIDENCE})")
    parser.add_argument("--no-plots", action="store_true", help="skip the psychometric plot")


def _table(rows: list[Comparison], a: str, b: str, confidence: float):
    from rich.table import Table

    table = Table(title=f"A = {a}, B = {b}: balanced accuracy on paired cases; B-A with its "
                        f"{confidence:.0%} source-bootstrap interval and bootstrap p (Holm within datasets "
                        f"and within durations) decide the winner; McNemar p (accuracy) beside it",
                  title_justify="left")
    for col in ("scope", "n", "BA A", "BA B", "B-A", "Holm p", "only A right", "only B right", "McNemar p",
                "winner"):
        table.add_column(col, justify="left" if col in ("scope", "winner") else "right")
    for r in rows:
        table.add_row(r.scope, str(r.n), formatting.number(r.balanced_accuracy_a),
                      formatting.number(r.balanced_accuracy_b),
                      formatting.interval(r.difference, r.difference_low, r.difference_high),
                      formatting.p_value(r.difference_p_adjusted), str(r.a_only), str(r.b_only),
                      formatting.p_value(r.p_value), r.winner)
    return table


def default_out(a: Run, b: Run) -> Path:
    """Beside RUN_A, named after both run directories and a hash of both paths: another pair
    of runs (even of the same two models) gets its own directory."""
    key = "\x1f".join(str(r.path.resolve()) for r in (a, b))
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]
    return a.path.parent / f"compare-{_file_name(a.path.name)}-vs-{_file_name(b.path.name)}-{digest}"


def _file_name(name: str) -> str:
    """A run name as one path component: a model id such as Qwen/Qwen2-Audio-7B-Instruct or
    /models/x must not turn the default output directory into nested ones."""
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "run"


def run(args: argparse.Namespace) -> int:

    console = formatting.terminal_console()
    try:
        a, b = load_run(args.run_a), load_run(args.run_b)
        if a.name == b.name:  # two runs of one model: tell them apart by directory
            a.name, b.name = a.path.name, b.path.name
        rows, paired = compare_runs(a, b, args.n_boot, args.confidence)
        out = output_dir(args.out, default_out(a, b))
    except (FileNotFoundError, PermissionError, ValueError) as exc:
        print(f"qsm-eval compare: {exc}", file=sys.stderr)
        return 2
    for stale in OUTPUTS:  # what an earlier compare here wrote, and this one may not
        (out / stale).unlink(missing_ok=True)
    unpaired = paired.attrs["unpaired"]
    if any(unpaired):
        console.print(f"[yellow]{unpaired[0]} case(s) of {a.name} and {unpaired[1]} of {b.name} have "
                      f"no partner and are left out[/yellow]")
    if paired.attrs["harness_errors"]:
        console.print(f"[yellow]{paired.attrs['harness_errors']} pair(s) where a run has a harness error "
                      f"(no model answer) are left out[/yellow]")
    console.print(_table(rows, a.name, b.name, args.confidence))
    frame = pd.DataFrame([r.to_dict() for r in rows])
    frame.to_csv(out / "compare.csv", index=False)
    summary = {"run_a": str(a.path), "run_b": str(b.path), "name_a": a.name, "name_b": b.name,
               "paired_on": paired.attrs["keys"], "n_paired": len(paired), "unpaired": list(unpaired),
               "harness_errors": paired.attrs["harness_errors"],
               "n_boot": args.n_boot, "confidence": args.confidence, "alpha": ALPHA,
               "rows": [r.to_dict() for r in rows]}
    (out / "compare.json").write_text(json.dumps(summary, indent=2, default=float) + "\n", encoding="utf-8")
    written = ["compare.csv", "compare.json"]
    if not args.no_plots:
        from qsm_eval.analysis import plots
        from qsm_eval.analysis.psychometric import fit_psychometric

        try:
            fits = {r.name: fit_psychometric(fit_rows(r.df), n_boot=args.n_boot, seed=(r.name,)) for r in (a, b)}
            written += [p.name for p in plots.psychometric_plot(fits, out / "psychometric",
                                                                title=f"{a.name} vs {b.name}")]
        except ValueError as exc:  # e.g. a single duration: no curve to draw
            console.print(f"[yellow]no psychometric plot: {exc}[/yellow]")
        written += [p.name for p in plots.rate_plot({a.name: a.df, b.name: b.df}, out / "rates",
                                                    title=f"{a.name} vs {b.name}: P(answer SPEECH)")]
    console.print(f"wrote {', '.join(written)} to {out}")
    return 0
