"""The grade's table on the terminal: one column a run, one row a score (mean over its stories)."""

from __future__ import annotations

import sys


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def summary_rows(result: dict) -> list[list[str]]:
    runs = result["runs"]
    rows = [["", *[r["name"] for r in runs]],
            ["stories", *[_cell(len(r["completions"])) for r in runs]],
            ["params", *[_cell(r.get("params")) for r in runs]],
            ["train tokens", *[_cell(r.get("train_tokens")) for r in runs]]]
    names = list(dict.fromkeys(n for r in runs for n in r["scores"]))
    rows += [[n, *[_cell((r["scores"].get(n) or {}).get("mean")) for r in runs]] for n in names]
    rows += [[n, *[_cell(r["diversity"].get(n)) for r in runs]] for n in runs[0]["diversity"]]
    return rows


def print_summary(result: dict, file=None) -> None:
    rows = summary_rows(result)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = file or sys.stdout
    for row in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))), file=out)
