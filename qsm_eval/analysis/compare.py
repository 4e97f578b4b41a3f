"""Compare two finished runs on the same segments: who is right where the other is wrong.

    qsm-eval compare RUN_A RUN_B [--out DIR]

Cases are paired on (segment_set, segment_id) when both runs record the segment set, else on
segment_id, else on audio_path. For the whole run, each dataset and each duration it gives
both balanced accuracies, their difference with a paired bootstrap interval that resamples
whole sources, and the exact McNemar test on the discordant pairs (the cases exactly one run
got right); per-dataset and per-duration p-values are Holm-adjusted. A winner is named only
where the adjusted p-value is below 0.05 and the source-bootstrap interval of the difference
excludes zero (McNemar alone treats clips of one recording as independent). Files
(compare.json, compare.csv, psychometric plots) go to DIR, by default a compare-A-vs-B
directory beside RUN_A.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from qsm_eval.analysis import binomial, formatting, resampling
from qsm_eval.analysis.metrics import balanced_from_counts
from qsm_eval.analysis.outcomes import fit_rows, outcomes
from qsm_eval.analysis.runs import Run, load_run, output_dir

ALPHA = 0.05
_CARRIED = ("true_label", "duration_ms", "dataset", "source_id", "condition", "snr_db")


class PairingError(ValueError):
    """Two runs that cannot be paired case by case."""


# --- pairing ------------------------------------------------------------------------------------

def pairing_keys(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """The columns that identify a segment in both runs."""
    def complete(col):
        return col in a and col in b and a[col].notna().all() and b[col].notna().all()

    if complete("segment_set") and complete("segment_id"):
        return ["segment_set", "segment_id"]
    if complete("segment_id"):
        return ["segment_id"]
    if complete("audio_path"):
        return ["audio_path"]
    raise PairingError("the runs share no complete segment identity (segment_set+segment_id, "
                       "segment_id or audio_path); they cannot be compared case by case")


def pair_runs(a: pd.DataFrame, b: pd.DataFrame, names=("A", "B")) -> pd.DataFrame:
    """One row per segment present in both runs, with correct_a and correct_b."""
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
    left = fa[keys + carried + extra + ["correct"]].rename(columns={"correct": "correct_a"})
    right = fb[keys + ["true_label"] + extra + ["correct"]].rename(
        columns={"true_label": "true_label_b", "correct": "correct_b", **{c: c + "_b" for c in extra}})
    paired = left.merge(right, on=keys, validate="one_to_one")
    if paired.empty:
        raise PairingError(f"{names[0]} and {names[1]} have no segment in common on {'+'.join(keys)}")
    mismatch = paired["true_label"] != paired["true_label_b"]
    if "audio_path_b" in paired:
        mismatch |= paired["audio_path"].notna() & paired["audio_path_b"].notna() & (
            paired["audio_path"] != paired["audio_path_b"])
    if mismatch.any():
        raise PairingError(f"{int(mismatch.sum())} paired case(s) differ in true_label or audio_path "
                           f"between {names[0]} and {names[1]}: these runs are not on the same segments")
    paired.attrs["keys"] = keys
    paired.attrs["unpaired"] = (len(fa) - len(paired), len(fb) - len(paired))
    return paired.drop(columns=[c for c in ("true_label_b", "audio_path_b") if c in paired])


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
    difference: float          # B - A, balanced accuracy
    difference_low: float
    difference_high: float
    a_only: int
    b_only: int
    both_right: int
    both_wrong: int
    p_value: float
    p_adjusted: float
    winner: str                # the name of the better run, or "no difference"

    def to_dict(self) -> dict:
        return asdict(self)


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
    lo = hi = math.nan
    if n_boot > 0:
        # Paired: one set of source draws serves both runs in each replicate.
        boot_a, boot_b = ba_pair(resampling.bootstrap_weights(clusters, n_boot, ("compare", scope, *seed)) @ sums)
        lo, hi = resampling.percentile_interval(boot_b - boot_a, confidence)
    test = mcnemar_exact(ca, cb)
    return Comparison(scope, len(paired), float(ba_a), float(ba_b), float(ba_b - ba_a), lo, hi,
                      test["a_only"], test["b_only"], test["both_right"], test["both_wrong"],
                      test["p_value"], test["p_value"], "")


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
        for row, p_adj in zip(family, holm([r.p_value for r in family])):
            row.p_adjusted = float(p_adj)
            # McNemar treats pairs as independent; clips of one source are not, so a winner
            # also needs the source-bootstrap interval of the difference to exclude zero.
            clear = row.difference_low > 0 or row.difference_high < 0
            if p_adj < ALPHA and clear and row.a_only != row.b_only:
                row.winner = a.name if row.a_only > row.b_only else b.name
            else:
                row.winner = "no difference"
            rows.append(row)
    return rows, paired


# --- the command ----------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_a", metavar="RUN_A", help="run directory (or results parquet) of the first model")
    parser.add_argument("run_b", metavar="RUN_B", help="run directory (or results parquet) of the second model")
    parser.add_argument("--out", help="where to write compare files (default: compare-A-vs-B beside RUN_A)")
    parser.add_argument("--n-boot", type=int, default=resampling.DEFAULT_N_BOOT,
                        help=f"bootstrap replicates (default {resampling.DEFAULT_N_BOOT})")
    parser.add_argument("--confidence", type=float, default=resampling.DEFAULT_CONFIDENCE,
                        help=f"interval level (default {resampling.DEFAULT_CONFIDENCE})")
    parser.add_argument("--no-plots", action="store_true", help="skip the psychometric plot")


def _table(rows: list[Comparison], a: str, b: str, confidence: float):
    from rich.table import Table

    table = Table(title=f"A = {a}, B = {b}: balanced accuracy on paired cases; B-A with its "
                        f"{confidence:.0%} source-bootstrap interval; exact McNemar p (Holm within "
                        f"datasets and within durations)", title_justify="left")
    for col in ("scope", "n", "BA A", "BA B", "B-A", "only A right", "only B right", "p", "Holm p", "winner"):
        table.add_column(col, justify="left" if col in ("scope", "winner") else "right")
    for r in rows:
        table.add_row(r.scope, str(r.n), formatting.number(r.balanced_accuracy_a),
                      formatting.number(r.balanced_accuracy_b),
                      formatting.interval(r.difference, r.difference_low, r.difference_high),
                      str(r.a_only), str(r.b_only), formatting.p_value(r.p_value),
                      formatting.p_value(r.p_adjusted), r.winner)
    return table


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
        out = output_dir(args.out, a.path.parent / f"compare-{_file_name(a.name)}-vs-{_file_name(b.name)}")
    except (FileNotFoundError, PermissionError, ValueError) as exc:
        print(f"qsm-eval compare: {exc}", file=sys.stderr)
        return 2
    unpaired = paired.attrs["unpaired"]
    if any(unpaired):
        console.print(f"[yellow]{unpaired[0]} case(s) of {a.name} and {unpaired[1]} of {b.name} have "
                      f"no partner and are left out[/yellow]")
    console.print(_table(rows, a.name, b.name, args.confidence))
    frame = pd.DataFrame([r.to_dict() for r in rows])
    frame.to_csv(out / "compare.csv", index=False)
    summary = {"run_a": str(a.path), "run_b": str(b.path), "name_a": a.name, "name_b": b.name,
               "paired_on": paired.attrs["keys"], "n_paired": len(paired), "unpaired": list(unpaired),
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
