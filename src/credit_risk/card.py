"""Responsible-AI assessment of a training run, and the model card built from it.

:func:`assess_run` computes, once per run, what the card and the promotion gate need: the
fairness audit (test split and out-of-fold CV), Brier before/after calibration and the SHAP
summary. The result is plain data stored in the exported model's ``metadata.json`` under
``responsible``, so the card served at ``GET /model/card`` (:func:`render_card_html`) is
rendered from the exported folder alone, with the model's version and metrics.
"""

from __future__ import annotations

import base64
import html
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.calibration import brier_before_after, is_calibrated, save_reliability_plot
from credit_risk.config import ProtectedPolicy, Settings
from credit_risk.fairness import (
    SEX_CAVEAT,
    FairnessAudit,
    audit_predictions,
    combine,
    log_audit,
)
from credit_risk.model import CALIBRATION_FOLDS_KEY, forests_of
from credit_risk.registry import read_metadata

CARD_MARKDOWN = "model_card.md"
CARD_HTML = "model_card.html"
RELIABILITY_PNG = "reliability.png"
SHAP_PNG = "shap_summary.png"
SHAP_ROWS = 200
SHAP_TOP = 12


# How the threshold was set, by the ``threshold_rule`` the metadata records.
THRESHOLD_BASIS = {
    "bayes": "the Bayes rule on calibrated probabilities: reject when the expected cost of "
    "accepting exceeds that of rejecting, i.e. at good_rejected / (good_rejected + "
    "bad_accepted).",
    "cross_validated": "chosen on the training split's out-of-fold predictions to minimise "
    "the expected cost.",
    "seed_0.5": "the seed's 0.5 (recall objective).",
}
BASIS_UNKNOWN = "set by a rule this model's metadata does not record."


def fairness_limits_failed(settings: Settings, audit: FairnessAudit) -> list[str]:
    """The promotion-gate limits of the settings that the out-of-fold audit breaks.

    The out-of-fold predictions cover the whole training split (800 rows by default), so
    group rates are less noisy than on the test split (e.g. 6 non-foreign workers in 200).
    """
    return audit.limits_failed(
        settings.fairness_min_disparate_impact,
        settings.fairness_max_equalized_odds_difference,
        split="cv",
    )


def _png_base64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def shap_summary(
    pipeline: Any, applicants: pd.DataFrame, path: Path, rows: int = SHAP_ROWS
) -> list[dict[str, float | str]]:
    """SHAP values of the forest on the encoded features: summary plot and mean |SHAP| ranking.

    The values explain the forest's score before calibration; calibration is monotone, so
    the ranking of features and the direction of their effects are the same after it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():  # shap's colormap set-up warns about matplotlib changes
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap

    encoded = pipeline[:-1].transform(applicants.head(rows))
    names = [str(n) for n in pipeline.named_steps["encode"].get_feature_names_out()]
    forest = forests_of(pipeline.named_steps["classifier"])[0]
    values = np.asarray(shap.TreeExplainer(forest).shap_values(encoded))
    bad = values[..., 1] if values.ndim == 3 else values  # (rows, features) for class bad
    frame = pd.DataFrame(np.asarray(encoded, dtype="float64"), columns=names)
    shap.summary_plot(bad, frame, max_display=SHAP_TOP, show=False, plot_size=(7, 5.5))
    fig = plt.gcf()
    fig.suptitle("SHAP summary: effect on the probability of bad (test split)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    ranking = np.abs(bad).mean(axis=0)
    order = np.argsort(ranking)[::-1][:SHAP_TOP]
    return [{"feature": names[i], "mean_abs_shap": float(ranking[i])} for i in order]


def assess_run(
    settings: Settings,
    pipeline: Any,
    params: dict[str, Any],
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    cv_probability: np.ndarray,
    x_test: pd.DataFrame,
    y_test: np.ndarray,
    test_probability: np.ndarray,
    threshold: float,
) -> dict[str, Any]:
    """Fairness, calibration and explanations of a fitted run, as plain (JSON-able) data.

    Args:
        settings: gate limits and policies.
        pipeline: the pipeline fitted on the training split.
        params: its parameters (for the calibration method).
        x_train, y_train, cv_probability: training split and out-of-fold probabilities.
        x_test, y_test, test_probability: test split and the pipeline's probabilities.
        threshold: the decision threshold (see ``metadata["threshold_rule"]``).
    """
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    audit = combine(
        audit_predictions("test", x_test, y_test, test_probability, threshold),
        audit_predictions("cv", x_train, y_train, cv_probability, threshold),
    )
    with tempfile.TemporaryDirectory() as folder:
        reliability = save_reliability_plot(
            pipeline, x_test, y_test, Path(folder) / RELIABILITY_PNG
        )
        top = shap_summary(pipeline, x_test, Path(folder) / SHAP_PNG)
        images = {
            RELIABILITY_PNG: _png_base64(reliability),
            SHAP_PNG: _png_base64(Path(folder) / SHAP_PNG),
        }
    return {
        "fairness": {
            "table": _json_safe(audit.table.to_dict(orient="records")),
            "metrics": _json_safe(audit.metrics),
            "limits_failed": fairness_limits_failed(settings, audit),
            "caveat": SEX_CAVEAT,
        },
        "calibration": {
            "method": str(pipeline.named_steps["classifier"].method)
            if is_calibrated(pipeline)
            else "none",
            "folds": params.get(CALIBRATION_FOLDS_KEY),
            **{f"test_{k}": v for k, v in brier_before_after(pipeline, x_test, y_test).items()},
        },
        "explanations": {"shap_top": top},
        "images": images,
    }


def _json_safe(value: Any) -> Any:
    """NaN (a rate over an empty group) becomes None, so metadata.json stays strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def audit_of(assessment: dict[str, Any]) -> FairnessAudit:
    """The fairness audit stored in an assessment."""
    fairness = assessment["fairness"]
    return FairnessAudit(table=pd.DataFrame(fairness["table"]), metrics=fairness["metrics"])


def log_assessment(assessment: dict[str, Any], card_metadata: dict[str, Any]) -> None:
    """Log the assessment and the model card to the active MLflow run.

    Args:
        assessment: from :func:`assess_run`.
        card_metadata: the run's metadata (as in ``metadata.json``) for the card.
    """
    import mlflow

    log_audit(audit_of(assessment))
    calibration = assessment["calibration"]
    # The method itself is already a run parameter (``calibration`` in the pipeline params).
    mlflow.log_metrics({k: v for k, v in calibration.items() if k.startswith("test_brier")})
    with tempfile.TemporaryDirectory() as folder:
        for name, encoded in assessment["images"].items():
            (Path(folder) / name).write_bytes(base64.b64decode(encoded))
        mlflow.log_artifacts(folder, "plots")
    metadata = {**card_metadata, "responsible": assessment}
    mlflow.log_text(card_markdown(metadata, inline_images=False), f"card/{CARD_MARKDOWN}")
    mlflow.log_text(card_html(metadata), f"card/{CARD_HTML}")


def _metric_rows(metadata: dict[str, Any]) -> list[str]:
    test, cv = metadata.get("test_metrics", {}), metadata.get("cv_metrics", {})
    rows = ["| metric | test split | CV mean ± std |", "|---|---:|---:|"]
    for name in ("cost", "recall_bad", "precision_bad", "roc_auc", "accuracy", "brier"):
        if name in test:
            spread = (
                f"{cv[name + '_mean']:.3f} ± {cv[name + '_std']:.3f}"
                if name + "_mean" in cv
                else "n/a"
            )
            rows.append(f"| {name} | {test[name]:.3f} | {spread} |")
    return rows


def card_markdown(metadata: dict[str, Any], inline_images: bool = True) -> str:
    """The model card as Markdown.

    Args:
        metadata: an exported model's metadata (``metadata.json``), with ``responsible``.
        inline_images: embed plots as data URIs (self-contained); else link ``../plots/``.
    """
    responsible = metadata.get("responsible", {})
    costs = metadata.get("cost_matrix", {})
    calibration = responsible.get("calibration", {})
    matrix = metadata.get("confusion_matrix", {})
    images = responsible.get("images", {})

    def image(name: str, alt: str) -> str:
        if inline_images and name in images:
            return f"![{alt}](data:image/png;base64,{images[name]})"
        return f"![{alt}](../plots/{name})"

    excluded = metadata.get("protected_policy") == ProtectedPolicy.EXCLUDE.value
    params = {k: v for k, v in metadata.get("params", {}).items()}
    version = str(metadata.get("model_version", ""))
    lines = [
        f"# Model card: {metadata.get('model_name', 'german-credit-risk')} "
        + (f"v{version}" if version.isdigit() else "(run not yet registered)"),
        "",
        f"MLflow run `{metadata.get('run_id', '?')}`, trained {metadata.get('trained_at', '?')}, "
        f"package {metadata.get('package_version', '?')}, objective "
        f"`{metadata.get('objective', '?')}`.",
        "",
        "## Intended use and users",
        "",
        "Scores an applicant for consumer credit as a good or bad risk, with the probability of "
        "bad and the principal reasons, to support (not replace) a credit officer's decision. "
        "Users: credit officers and risk analysts of a lender, and engineers evaluating credit "
        "MLOps. It is a demonstration trained on 1970s German data: it is not fit to decide on "
        "real applicants, and any adverse decision must be reviewable by a person and come "
        "with its principal reasons (ECOA/Reg B); credit scoring is high-risk under the EU AI "
        "Act.",
        "",
        "## Data and its caveats",
        "",
        "Statlog (German Credit Data), UCI, Hofmann 1994, CC BY 4.0: 1000 applicants, 20 "
        "attributes, 30 % bad. sha256 of the training file: "
        f"`{metadata.get('data_sha256', '?')}`. Small, old, from one bank, with a sample that "
        "over-represents bad credits. " + SEX_CAVEAT,
        "",
        f"Protected attributes (sex/marital status, age, foreign worker) are "
        f"{'**excluded from the model inputs**' if excluded else 'model inputs'} "
        f"(policy `{metadata.get('protected_policy', '?')}`); they are always used for the "
        "fairness audit below.",
        "",
        "## Metrics",
        "",
        "Protocol: stratified train/test split; the CV figures come from stratified k-fold "
        "cross-validation on the training split only (out-of-fold predictions); the test "
        "split is never used for tuning or the threshold.",
        "",
        *_metric_rows(metadata),
        "",
        "## Threshold and cost matrix",
        "",
        f"Reject when probability of bad ≥ **{metadata.get('threshold', float('nan')):.4f}**, "
        f"{THRESHOLD_BASIS.get(str(metadata.get('threshold_rule')), BASIS_UNKNOWN)}"
        f" The cost matrix of german.doc: a bad applicant accepted costs "
        f"{costs.get('bad_accepted', '?')}, a good "
        f"applicant rejected costs {costs.get('good_rejected', '?')}. Accuracy is not the target:"
        " rejecting nobody is 70 % accurate and costs 1.5 per applicant.",
        "",
        f"Test-split confusion: {matrix.get('good_accepted', '?')} good accepted, "
        f"{matrix.get('good_rejected', '?')} good rejected, {matrix.get('bad_accepted', '?')} "
        f"bad accepted, {matrix.get('bad_rejected', '?')} bad rejected.",
        "",
        "## Calibration",
        "",
        f"Method `{calibration.get('method', '?')}` fitted on out-of-fold forest scores inside "
        "the pipeline (balanced undersampling inflates raw scores). Test-split Brier: "
        f"{calibration.get('test_brier_uncalibrated', float('nan')):.4f} before, "
        f"{calibration.get('test_brier_calibrated', float('nan')):.4f} after.",
        "",
        image(RELIABILITY_PNG, "reliability diagram"),
        "",
        "## Fairness",
        "",
        "Approval rate (selection rate), recall of bad and false-positive rate (good applicants "
        "rejected) by group; disparate impact = lowest over highest approval rate (four-fifths "
        "rule: ≥ 0.8); equalized-odds difference = largest gap in recall of bad or FPR.",
        "",
    ]
    if "fairness" in responsible:
        lines.append(audit_of(responsible).markdown())
        failed = responsible["fairness"].get("limits_failed") or []
        lines += [
            "",
            "Promotion-gate fairness limits: "
            + ("; ".join(failed) if failed else "none failed (or none set)."),
        ]
    lines += [
        "",
        "## Global explanations",
        "",
        "SHAP values of the forest (before calibration, which is monotone) on the test split.",
        "",
        image(SHAP_PNG, "SHAP summary"),
        "",
        "| feature | mean abs SHAP |",
        "|---|---:|",
        *[
            f"| {row['feature']} | {row['mean_abs_shap']:.4f} |"
            for row in responsible.get("explanations", {}).get("shap_top", [])
        ],
        "",
        "## Limitations",
        "",
        "- 1000 applicants: test-split metrics move by several points with the split; read "
        "the CV spread.",
        "- Group sizes in the fairness table are small (foreign worker = no: about 4 %), so "
        "group rates are noisy; the sex labels are unreliable (see above).",
        "- Excluding protected inputs does not remove their influence through correlated "
        "attributes (housing, employment duration, job).",
        "- Population drift since 1994 is unknown: monitor inputs and scores "
        "(`credit-risk monitor`) and retrain.",
        "",
        "## How to reproduce",
        "",
        "From the repository at package version "
        f"{metadata.get('package_version', '?')}, on the training file with the sha256 above "
        "(`--trials`: the `trials` parameter of the MLflow run):",
        "",
        "```bash",
        f"CREDIT_RISK_CALIBRATION={params.get('calibration', 'sigmoid')} "
        f"credit-risk train --seed {metadata.get('seed', 42)} --objective "
        f"{metadata.get('objective', 'cost')} --protected "
        f"{metadata.get('protected_policy', 'include')} --trials N",
        "```",
        "",
        "An in-process search is seeded, so the same trials give the same parameters; this "
        "model's were "
        f"`{params}`.",
    ]
    return "\n".join(lines) + "\n"


def card_html(metadata: dict[str, Any]) -> str:
    """The model card as a self-contained HTML page (images inline)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(card_markdown(metadata))
    title = html.escape(
        f"Model card: {metadata.get('model_name', '')} {metadata.get('model_version', '')}"
    )
    style = (
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem;line-height:1.45}table{border-collapse:collapse;margin:.5rem 0}"
        "td,th{border:1px solid #ccc;padding:.2rem .5rem}img{max-width:100%}"
        "code,pre{background:#f4f4f4}"
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{style}</style></head><body>{body}</body></html>"
    )


def render_card_html(model_dir: Path) -> str:
    """The model card of an exported model folder, as HTML (for ``GET /model/card``)."""
    return card_html(read_metadata(Path(model_dir)))


def render_card_markdown(model_dir: Path) -> str:
    """The model card of an exported model folder, as Markdown."""
    return card_markdown(read_metadata(Path(model_dir)))
