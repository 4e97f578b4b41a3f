"""The balance and confound report of a built segment set.

One row per cell (dataset, split, label, condition, SNR, duration): how many clips, from how
many recordings, how loud on average, and how many candidates were rejected. Unequal
counts are a balance problem; few recordings per cell or a level gap between SPEECH and
NONSPEECH at the same duration are confounds a model could score on instead of speech.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

from qsm_eval.builders.windows import CLIPPED, SILENT

REPORT_TEXT = "balance.txt"
REPORT_CSV = "balance.csv"
COLUMNS = ("dataset", "split", "label", "condition", "snr_db", "duration_ms", "clips", "sources",
           "mean_rms_dbfs", "rejected_silent", "rejected_clipped")


def balance_rows(records: list[dict], rejected: dict[tuple, Counter]) -> list[dict]:
    """Cells in a fixed order; ``rejected`` is keyed by (split, label, condition, duration_ms)."""
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        snr = record.get("snr_db")
        # Clean clips (no SNR) sort before the noise levels.
        cells[(record["dataset"], record["split"], record["label"], record["condition"] or "",
               snr is not None, snr if snr is not None else 0.0,
               record["duration_ms"])].append(record)
    rows = []
    for key in sorted(cells):
        dataset, split, label, condition, noisy, snr, duration_ms = key
        members = cells[key]
        # Candidates are rejected before mixing: the counts belong to the clean cell.
        counts = Counter() if noisy else rejected.get((split, label, condition or None, duration_ms),
                                                      Counter())
        rows.append({
            "dataset": dataset, "split": split, "label": label, "condition": condition,
            "snr_db": f"{snr:g}" if noisy else "", "duration_ms": duration_ms, "clips": len(members),
            "sources": len({m["source_id"] for m in members}),
            "mean_rms_dbfs": round(sum(m["rms_dbfs"] for m in members) / len(members), 1),
            "rejected_silent": counts[SILENT], "rejected_clipped": counts[CLIPPED],
        })
    return rows


# Terminal headers: short enough for an 80-column terminal (the dataset is in the title).
HEADERS = {"split": "split", "label": "label", "condition": "condition", "snr_db": "SNR dB",
           "duration_ms": "ms",
           "clips": "clips", "sources": "sources", "mean_rms_dbfs": "dBFS",
           "rejected_silent": "silent", "rejected_clipped": "clipped"}


def balance_table(rows: list[dict], title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  collapse_padding=True, caption="dBFS: mean RMS level; silent, "
                  "clipped: candidate windows rejected")
    for column, header in HEADERS.items():
        table.add_column(header, justify="left" if column in ("split", "label", "condition")
                         else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(str(row[c]) if row[c] != "" else "-" for c in HEADERS))
    return table


def save_balance(out_dir: Path, rows: list[dict], title: str) -> None:
    """Write the report beside the metadata: a plain-text table and a CSV of the same rows."""
    buffer = io.StringIO()
    # Fixed width and no colour: the file must be identical on every rebuild.
    Console(file=buffer, width=140, color_system=None, force_terminal=False).print(
        balance_table(rows, title))
    (out_dir / REPORT_TEXT).write_text(buffer.getvalue(), encoding="utf-8")
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(out_dir / REPORT_CSV, index=False)
