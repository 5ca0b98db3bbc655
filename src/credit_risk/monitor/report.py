"""The drift report: plots per model version and the self-contained HTML page."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.monitor.drift import DriftResult, VersionDrift
from credit_risk.monitor.statistics import (
    CHI_SQUARE,
    KS,
    PSI_ACT,
    PSI_WATCH,
    SCORE,
    choose_test,
    value_key,
)

# --- the report -----------------------------------------------------------------------------


def _figure_base64(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def drift_plots(version: VersionDrift, decisions: pd.DataFrame, top: int = 4) -> dict[str, str]:
    """PNG (base64) plots of one version: the score, then the attributes with the lowest p."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference = version.reference
    if reference is None or version.table.empty:
        return {}
    plots: dict[str, str] = {}
    by_name = version.table.set_index("attribute")
    ordered = version.table.sort_values("p_value")["attribute"]
    names = [SCORE] if SCORE in by_name.index else []
    names += [n for n in ordered if n != SCORE][:top]
    for name in names:
        fig, ax = plt.subplots(figsize=(5.5, 3.2))
        if choose_test(name) == KS:
            ref = reference.values(name)
            cur = decisions[name].dropna().to_numpy(dtype="float64")
            bins = np.histogram_bin_edges(np.r_[ref, cur], bins=20).tolist()
            ax.hist(ref, bins=bins, density=True, alpha=0.55, label="reference")
            ax.hist(cur, bins=bins, density=True, alpha=0.55, label="recent decisions")
        else:
            counts = reference.attributes[name]
            current = decisions[name].dropna().map(value_key).value_counts(normalize=True)
            levels = sorted(set(counts) | set(current.index))
            total = sum(counts.values())
            x = np.arange(len(levels))
            ax.bar(x - 0.2, [counts.get(v, 0) / total for v in levels], 0.4, label="reference")
            ax.bar(x + 0.2, current.reindex(levels, fill_value=0), 0.4, label="recent decisions")
            ax.set_xticks(x, levels, fontsize=8)
        row = by_name.loc[name]
        ax.set_title(
            f"{name}: {row['test']} p={row['p_value']:.2g}, PSI {row['psi']:.3f}", fontsize=10
        )
        ax.legend(fontsize=8)
        plots[name] = _figure_base64(fig)
    return plots


def render_report(result: DriftResult, plots: Mapping[str, Mapping[str, str]]) -> str:
    """The drift report as a self-contained HTML page (plots per model version)."""
    from importlib.resources import files

    from jinja2 import Environment, select_autoescape

    template = files("credit_risk").joinpath("templates/monitor_report.html.j2").read_text()
    environment = Environment(autoescape=select_autoescape(default=True))
    return environment.from_string(template).render(
        result=result,
        plots=plots,
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
        watch=PSI_WATCH,
        act=PSI_ACT,
        chi_square=CHI_SQUARE,
    )
