"""Markdown cells and rows shared by the benchmark scripts (rhfe.py, rbfe.py, results_page.py)."""

from __future__ import annotations

import json
from pathlib import Path


def fmt(x: float | None, digits: int = 2, missing: str = "") -> str:
    """A number with ``digits`` decimals; ``missing`` for None."""
    return missing if x is None else f"{x:.{digits}f}"


def ci(metric: dict | None, missing: str = "") -> str:
    """``value [ci_low, ci_high]`` of a statistic (analysis.results.Statistic as JSON); ``missing`` for None."""
    if not metric:
        return missing
    return f"{metric['value']:.2f} [{metric['ci_low']:.2f}, {metric['ci_high']:.2f}]"


def statistics_rows(named: dict[str, dict], missing: str = "") -> list[str]:
    """One markdown row per name → StatisticsResult (as JSON): n, RMSE, MUE, R², Kendall τ with their intervals."""
    rows = []
    for name, s in named.items():
        m = s["metrics"]
        cells = " | ".join(ci(m.get(key), missing) for key in ("rmse", "mue", "r2", "kendall_tau"))
        rows.append(f"| {name} | {s['n']} | {cells} |")
    return rows


def write_result(out: Path, stem: str, data: dict, text: str) -> None:
    """``out/<stem>.json`` and ``out/<stem>.md`` of one benchmark, and the markdown on stdout."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / f"{stem}.md").write_text(text)
    print(text)
