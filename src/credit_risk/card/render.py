"""The model card, rendered from an exported model's metadata alone (Jinja templates).

The text lives in ``credit_risk/templates/model_card.md.j2`` (the card) and
``model_card.html.j2`` (the page around the card's Markdown rendered as HTML), loaded as the
drift report's template is (:func:`credit_risk.monitor.render_report`).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from credit_risk.card.assess import RELIABILITY_PNG, SHAP_PNG, assessment_of
from credit_risk.config import ProtectedPolicy
from credit_risk.fairness import SEX_CAVEAT
from credit_risk.registry import read_metadata
from credit_risk.scorecard.lookup import TABLE_KEY
from credit_risk.scorecard.table import PointsTable

if TYPE_CHECKING:
    from jinja2 import Template

CARD_MARKDOWN = "model_card.md"
CARD_HTML = "model_card.html"

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

# The card's metric table, in this order (those the metadata has).
CARD_METRICS = ("cost", "recall_bad", "precision_bad", "roc_auc", "accuracy", "brier")


class MetricRow(NamedTuple):
    """One row of the card's metric table; ``cv_mean``/``cv_std`` None when not cross-validated."""

    name: str
    test: float
    cv_mean: float | None
    cv_std: float | None


def _template(name: str, html: bool) -> Template:
    from jinja2 import Environment, StrictUndefined

    text = files("credit_risk").joinpath(f"templates/{name}").read_text()
    environment = Environment(
        autoescape=html,  # Markdown is not escaped: the HTML page escapes what it inserts
        undefined=StrictUndefined,
        # Block tags on their own line leave no blank line behind (Markdown is line-based).
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return environment.from_string(text)


def _metric_rows(metadata: dict[str, Any]) -> list[MetricRow]:
    test, cv = metadata.get("test_metrics", {}), metadata.get("cv_metrics", {})
    return [
        MetricRow(name, test[name], cv.get(f"{name}_mean"), cv.get(f"{name}_std"))
        for name in CARD_METRICS
        if name in test
    ]


def rows_statement(metadata: dict[str, Any]) -> str:
    """Which rows the exported model was fitted on and where its test figures come from."""
    fitted_on = metadata.get("fitted_on")
    if not fitted_on:  # exported before ``fit_rows``: the training split's model
        return (
            "this model was fitted on the training split (its metadata predates `fit_rows`); "
            "the test-split figures are its own."
        )
    evaluation = metadata.get("test_evaluation") or {}
    return (
        f"this model was fitted on {fitted_on} (`fit_rows` `{metadata.get('fit_rows', '?')}`). "
        f"The test-split figures below are those of {evaluation.get('of', 'this model')}."
    )


def prior_statement(metadata: dict[str, Any]) -> str:
    """Which population the threshold is set for (``population_bad_rate``, evaluate.prior)."""
    sample = metadata.get("sample_bad_rate")
    sample_text = f"{sample:.1%}" if isinstance(sample, int | float) else "unknown"
    population = metadata.get("population_bad_rate")
    if population is None:
        return (
            "Population: the threshold assumes applicants arrive like the training rows (bad "
            f"rate {sample_text}). The Statlog sample over-represents bad credits; set "
            "`population_bad_rate` to your applicants' rate (README, \"The sample is not the "
            'population").'
        )
    return (
        f"Population: the threshold applies the rule to probabilities shifted from the training "
        f"rows' bad rate ({sample_text}) to the population's ({population:.1%}, "
        "`population_bad_rate`; prior shift). The served probability stays on the sample's "
        "scale, so the threshold above is that rule's sample-scale equivalent."
    )


def _points_table(metadata: dict[str, Any]) -> PointsTable | None:
    """A scorecard's points table (None for another family)."""
    stored = metadata.get(TABLE_KEY)
    return PointsTable.model_validate(stored) if stored is not None else None


def card_markdown(metadata: dict[str, Any], inline_images: bool = True) -> str:
    """The model card as Markdown.

    Args:
        metadata: an exported model's metadata (``metadata.json``), with ``responsible``.
        inline_images: embed plots as data URIs (self-contained); else link ``../plots/``.
    """
    assessment = assessment_of(metadata)
    embedded = assessment.images if assessment is not None and inline_images else {}
    images = {
        name: f"data:image/png;base64,{embedded[name]}" if name in embedded else f"../plots/{name}"
        for name in (RELIABILITY_PNG, SHAP_PNG)
    }
    version = str(metadata.get("model_version", ""))
    return _template("model_card.md.j2", html=False).render(
        metadata=metadata,
        version=f"v{version}" if version.isdigit() else "(run not yet registered)",
        excluded=metadata.get("protected_policy") == ProtectedPolicy.EXCLUDE.value,
        sex_caveat=SEX_CAVEAT,
        metric_rows=_metric_rows(metadata),
        rows_statement=rows_statement(metadata),
        prior_statement=prior_statement(metadata),
        threshold=metadata.get("threshold", float("nan")),
        threshold_basis=THRESHOLD_BASIS.get(str(metadata.get("threshold_rule")), BASIS_UNKNOWN),
        costs=metadata.get("cost_matrix", {}),
        matrix=metadata.get("confusion_matrix", {}),
        assessment=assessment,
        reliability_src=images[RELIABILITY_PNG],
        shap_src=images[SHAP_PNG],
        params=dict(metadata.get("params", {})),
        scorecard=_points_table(metadata),
    )


def card_html(metadata: dict[str, Any]) -> str:
    """The model card as a self-contained HTML page (images inline)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(card_markdown(metadata))
    return _template("model_card.html.j2", html=True).render(
        model_name=metadata.get("model_name", ""),
        model_version=metadata.get("model_version", ""),
        body=body,
    )


def render_card_html(model_dir: Path) -> str:
    """The model card of an exported model folder, as HTML (for ``GET /model/card``)."""
    return card_html(read_metadata(Path(model_dir)))


def render_card_markdown(model_dir: Path) -> str:
    """The model card of an exported model folder, as Markdown."""
    return card_markdown(read_metadata(Path(model_dir)))
