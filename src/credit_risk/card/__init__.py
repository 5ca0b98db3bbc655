"""Responsible-AI assessment of a training run, and the model card rendered from it.

- :mod:`~credit_risk.card.assess`: :func:`assess_run` computes the typed :class:`Assessment`
  once per run (fairness audit, calibration check, SHAP summary); it is stored as JSON in the
  exported model's ``metadata.json`` under ``responsible``.
- :mod:`~credit_risk.card.render`: the card as Markdown and HTML (Jinja templates) from that
  metadata alone, so ``GET /model/card`` needs only the exported folder.
- :mod:`~credit_risk.card.publish`: :func:`log_assessment` logs both to the MLflow run.
"""

from credit_risk.card.assess import (
    RELIABILITY_PNG,
    SHAP_PNG,
    Assessment,
    CalibrationCheck,
    ShapFeature,
    assess_run,
    assessment_of,
    fairness_limits_failed,
    fairness_limits_insufficient,
    shap_summary,
)
from credit_risk.card.publish import log_assessment
from credit_risk.card.render import (
    BASIS_UNKNOWN,
    CARD_HTML,
    CARD_MARKDOWN,
    THRESHOLD_BASIS,
    card_html,
    card_markdown,
    render_card_html,
    render_card_markdown,
)

__all__ = [
    "BASIS_UNKNOWN",
    "CARD_HTML",
    "CARD_MARKDOWN",
    "RELIABILITY_PNG",
    "SHAP_PNG",
    "THRESHOLD_BASIS",
    "Assessment",
    "CalibrationCheck",
    "ShapFeature",
    "assess_run",
    "assessment_of",
    "card_html",
    "card_markdown",
    "fairness_limits_failed",
    "fairness_limits_insufficient",
    "log_assessment",
    "render_card_html",
    "render_card_markdown",
    "shap_summary",
]
