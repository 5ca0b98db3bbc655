"""Drift monitoring: the decision log's recent inputs and scores against the training data.

Per attribute and for the score: the population stability index (PSI) with the usual bands
(< 0.1 stable, 0.1-0.25 watch, >= 0.25 act), and for numeric attributes the two-sample
Kolmogorov-Smirnov test (scipy), Bonferroni-corrected over the numeric attributes. Drift is
flagged when any PSI reaches ``monitor_psi_limit`` or any corrected KS p-value falls below
``monitor_p_value``; ``credit-risk monitor`` then exits non-zero, and a flow can retrain.

Why not Evidently: its latest release (0.7.23) fails to import with the pandas 3 that this
project pins (``ImportError: infer_dtype_from_object``); optbinning's scorecard monitoring
needs an optbinning scorecard, not our pipeline. PSI is a closed formula; the statistical test
comes from scipy.

The reference inputs are the training file (all rows); the reference scores are the served
model's probabilities on the held-out test split of that file (in-sample forest scores are
more extreme than anything the service will produce).
"""

from __future__ import annotations

import base64
import io
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from credit_risk.config import Settings
from credit_risk.schema import BY_NAME, CATEGORICAL, FEATURE_NAMES, NUMERIC, label_to_code

log = logging.getLogger(__name__)

SCORE = "probability_bad"
PSI_WATCH, PSI_ACT = 0.1, 0.25
SCORE_BINS = 10
NUMERIC_BINS = 10
# Half an observation in every bin, so an empty bin gives a large but finite PSI term.
PSEUDO_COUNT = 0.5


def psi_band(value: float) -> str:
    """The conventional reading of a PSI value."""
    return "stable" if value < PSI_WATCH else ("watch" if value < PSI_ACT else "act")


def _psi_from_counts(expected: np.ndarray, actual: np.ndarray) -> float:
    expected = (expected + PSEUDO_COUNT) / (expected.sum() + PSEUDO_COUNT * len(expected))
    actual = (actual + PSEUDO_COUNT) / (actual.sum() + PSEUDO_COUNT * len(actual))
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def numeric_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges: the reference's quantiles (distinct values only)."""
    quantiles = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(quantiles)


def psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int = NUMERIC_BINS) -> float:
    """PSI over the reference's quantile bins (ties merged: banded attributes get fewer bins)."""
    edges = numeric_edges(np.asarray(reference, dtype="float64"), bins)
    expected = np.bincount(
        np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1
    )
    actual = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    return _psi_from_counts(expected.astype(float), actual.astype(float))


def psi_categorical(reference: pd.Series, current: pd.Series, levels: list[str]) -> float:
    """PSI over the codebook's levels (a level never seen anywhere adds nothing)."""
    expected = reference.astype(str).value_counts().reindex(levels, fill_value=0).to_numpy()
    actual = current.astype(str).value_counts().reindex(levels, fill_value=0).to_numpy()
    seen = (expected + actual) > 0
    return _psi_from_counts(expected[seen].astype(float), actual[seen].astype(float))


@dataclass
class DriftResult:
    """Per-attribute and score drift of a window of decisions against the reference."""

    table: pd.DataFrame
    drift: bool
    reasons: list[str]
    reference_rows: int
    current_rows: int
    enough_data: bool = True
    details: dict[str, Any] = field(default_factory=dict)
    report_path: Path | None = None

    def summary(self) -> str:
        """Readable outcome, for the CLI and logs."""
        if not self.enough_data:
            return (
                f"not enough decisions to judge drift: {self.current_rows} rows "
                f"(need {self.details.get('min_rows')})"
            )
        head = "DRIFT" if self.drift else "no drift"
        worst = self.table.sort_values("psi", ascending=False).head(3)
        top = ", ".join(f"{r.attribute} PSI {r.psi:.3f}" for r in worst.itertuples())
        lines = [
            f"{head}: {self.current_rows} decisions vs {self.reference_rows} reference "
            f"rows; highest {top}"
        ]
        lines += [f"  - {reason}" for reason in self.reasons]
        return "\n".join(lines)


def assess_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    reference_scores: np.ndarray | None = None,
    psi_limit: float = PSI_ACT,
    p_value: float = 0.01,
    min_rows: int = 50,
) -> DriftResult:
    """Compare a window of scored inputs with the reference.

    Args:
        reference: training inputs (schema columns).
        current: logged inputs with their served ``probability_bad``.
        reference_scores: the model's probabilities on held-out reference rows (None: the
            score is not compared).
        psi_limit: PSI at or above which an attribute or the score counts as drifted.
        p_value: family-wise level of the KS tests over the numeric attributes.
        min_rows: fewer current rows than this: no verdict (``enough_data`` False).

    Returns:
        One row per attribute and one for the score: psi, band, KS statistic and p-value.
    """
    rows: list[dict[str, Any]] = []
    corrected = p_value / len(NUMERIC)
    for name in FEATURE_NAMES:
        attribute = BY_NAME[name]
        row: dict[str, Any] = {
            "attribute": name,
            "uci_number": attribute.uci_number,
            "kind": attribute.kind.value,
            "ks_statistic": np.nan,
            "ks_p_value": np.nan,
        }
        if name in NUMERIC:
            ref = reference[name].to_numpy(dtype="float64")
            cur = current[name].to_numpy(dtype="float64")
            row["psi"] = psi_numeric(ref, cur)
            if len(cur) > 0:
                test = ks_2samp(ref, cur)
                row["ks_statistic"], row["ks_p_value"] = float(test.statistic), float(test.pvalue)
        else:
            row["psi"] = psi_categorical(reference[name], current[name], list(attribute.codes))
        rows.append(row)
    if reference_scores is not None and SCORE in current:
        rows.append(
            {
                "attribute": SCORE,
                "uci_number": 0,
                "kind": "score",
                "psi": psi_numeric(
                    np.asarray(reference_scores, dtype="float64"),
                    current[SCORE].to_numpy(dtype="float64"),
                    SCORE_BINS,
                ),
                "ks_statistic": np.nan,
                "ks_p_value": np.nan,
            }
        )
    table = pd.DataFrame(rows)
    table["band"] = table["psi"].map(psi_band)
    table["drifted"] = (table["psi"] >= psi_limit) | (table["ks_p_value"] < corrected)
    enough = len(current) >= min_rows
    reasons: list[str] = []
    if enough:
        for drifted in table[table["drifted"]].itertuples():
            why = [f"PSI {drifted.psi:.3f} >= {psi_limit}"] if drifted.psi >= psi_limit else []
            if drifted.ks_p_value < corrected:
                why.append(
                    f"KS p={drifted.ks_p_value:.2g} < {corrected:.2g} "
                    f"({p_value} / {len(NUMERIC)} numeric attributes)"
                )
            reasons.append(f"{drifted.attribute}: " + "; ".join(why))
    return DriftResult(
        table=table,
        drift=enough and bool(reasons),
        reasons=reasons,
        reference_rows=len(reference),
        current_rows=len(current),
        enough_data=enough,
        details={"psi_limit": psi_limit, "p_value": p_value, "min_rows": min_rows},
    )


def parse_since(value: str | None, now: datetime | None = None) -> datetime | None:
    """``7d``, ``24h``, ``90m`` (before now) or an ISO date/time (UTC when naive)."""
    if not value:
        return None
    now = now or datetime.now(UTC)
    match = re.fullmatch(r"(\d+)\s*([dhm])", value.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - timedelta(**{{"d": "days", "h": "hours", "m": "minutes"}[unit]: amount})
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def decisions_to_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Logged decisions (``input`` dict + ``probability_bad``...) as one row per applicant.

    Categorical inputs logged as readable labels are mapped back to their codes.
    """
    inputs = pd.DataFrame([record["input"] for record in records], columns=list(FEATURE_NAMES))
    for name in CATEGORICAL:
        attribute = BY_NAME[name]
        inputs[name] = inputs[name].map(lambda v, a=attribute: label_to_code(a, str(v)) or str(v))
    for name in NUMERIC:
        inputs[name] = pd.to_numeric(inputs[name], errors="coerce")
    meta = pd.DataFrame(
        [
            {k: record.get(k) for k in ("request_id", "created_at", "model_version", SCORE)}
            for record in records
        ]
    )
    return pd.concat([inputs, meta], axis=1)


def read_decisions(
    url: str, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """The decision log's rows in a time window (see :mod:`credit_risk.decision_log`)."""
    import sqlalchemy as sa

    from credit_risk.decision_log import decisions_table, make_engine

    table = decisions_table
    query = sa.select(
        table.c.request_id,
        table.c.created_at,
        table.c.model_version,
        table.c.input,
        table.c.probability_bad,
    )
    if since is not None:
        query = query.where(table.c.created_at >= since)
    if until is not None:
        query = query.where(table.c.created_at < until)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            records = [dict(row._mapping) for row in connection.execute(query)]
    except sa.exc.OperationalError as error:  # no table yet: nothing was decided
        log.warning("cannot read the decision log at %s: %s", url, error)
        records = []
    finally:
        engine.dispose()
    return decisions_to_frame(records)


def reference_data(settings: Settings, model_dir: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Training inputs (all rows) and the served model's scores on the held-out test split."""
    from credit_risk.data import load_training_data, split_dataset
    from credit_risk.registry import load_exported

    dataset = load_training_data(settings)
    pipeline, _ = load_exported(model_dir)
    _, x_test, _, _ = split_dataset(dataset, settings.test_size, settings.seed)
    return dataset.features, pipeline.predict_proba(x_test)[:, 1]


def _figure_base64(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def drift_plots(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    result: DriftResult,
    reference_scores: np.ndarray | None = None,
    top: int = 6,
) -> dict[str, str]:
    """PNG (base64) plots: the score, then the attributes with the highest PSI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: dict[str, str] = {}
    ordered = result.table.sort_values("psi", ascending=False)
    names = [SCORE] if SCORE in set(result.table["attribute"]) else []
    names += [n for n in ordered["attribute"] if n != SCORE][:top]
    for name in names:
        fig, ax = plt.subplots(figsize=(5.5, 3.2))
        if name == SCORE or name in NUMERIC:
            ref = (
                np.asarray(reference_scores, dtype="float64")
                if name == SCORE
                else reference[name].dropna().to_numpy(dtype="float64")
            )
            cur = current[name].dropna().to_numpy(dtype="float64")
            bins = np.histogram_bin_edges(np.r_[ref, cur], bins=20).tolist()
            ax.hist(ref, bins=bins, density=True, alpha=0.55, label="reference")
            ax.hist(cur, bins=bins, density=True, alpha=0.55, label="recent decisions")
        else:
            codes = list(BY_NAME[name].codes)
            ref_share = reference[name].astype(str).value_counts(normalize=True)
            cur_share = current[name].astype(str).value_counts(normalize=True)
            x = np.arange(len(codes))
            ax.bar(x - 0.2, ref_share.reindex(codes, fill_value=0), 0.4, label="reference")
            ax.bar(x + 0.2, cur_share.reindex(codes, fill_value=0), 0.4, label="recent decisions")
            ax.set_xticks(x, codes, fontsize=8)
        psi = float(result.table.set_index("attribute").loc[name, "psi"])
        ax.set_title(f"{name}: PSI {psi:.3f} ({psi_band(psi)})", fontsize=10)
        ax.legend(fontsize=8)
        plots[name] = _figure_base64(fig)
    return plots


def render_report(result: DriftResult, plots: dict[str, str], window: str) -> str:
    """The drift report as a self-contained HTML page."""
    from importlib.resources import files

    from jinja2 import Environment, select_autoescape

    template = files("credit_risk").joinpath("templates/monitor_report.html.j2").read_text()
    environment = Environment(autoescape=select_autoescape(default=True))
    return environment.from_string(template).render(
        result=result,
        plots=plots,
        window=window,
        rows=result.table.to_dict(orient="records"),
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
        watch=PSI_WATCH,
        act=PSI_ACT,
    )


def monitor(
    settings: Settings,
    since: datetime | None = None,
    until: datetime | None = None,
    model_dir: Path | None = None,
    report: Path | None = None,
    decisions: pd.DataFrame | None = None,
) -> DriftResult:
    """Read the decision log, compare it with the training data, write the HTML report.

    A plain function, so a Prefect task can call it and retrain when ``result.drift``.

    Args:
        settings: data file, decision-log URL, limits, report path.
        since, until: time window of the decisions (default: the whole log).
        model_dir: exported model whose held-out scores are the reference (default: champion).
        report: where to write the HTML report (default ``settings.monitor_report``).
        decisions: logged decisions to use instead of reading the log (tests, batch files).
    """
    folder = Path(model_dir or settings.model_dir)
    current = (
        decisions
        if decisions is not None
        else read_decisions(settings.decision_log_url, since, until)
    )
    reference, reference_scores = reference_data(settings, folder)
    result = assess_drift(
        reference,
        current,
        reference_scores,
        settings.monitor_psi_limit,
        settings.monitor_p_value,
        settings.monitor_min_rows,
    )
    if "model_version" in current:
        result.details["model_versions"] = sorted(
            str(v) for v in current["model_version"].dropna().unique()
        )
    window = (
        f"{since.isoformat() if since else 'start of log'} to "
        f"{until.isoformat() if until else 'now'}"
    )
    plots = drift_plots(reference, current, result, reference_scores) if result.current_rows else {}
    path = Path(report or settings.monitor_report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result, plots, window))
    result.report_path = path
    log.info("%s; report %s", result.summary(), path)
    return result
