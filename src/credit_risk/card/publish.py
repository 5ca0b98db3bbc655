"""Log a run's assessment and its model card to the active MLflow run."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path
from typing import Any

from credit_risk.card.assess import Assessment
from credit_risk.card.render import CARD_HTML, CARD_MARKDOWN, card_html, card_markdown
from credit_risk.fairness import log_audit


def log_assessment(assessment: Assessment, card_metadata: dict[str, Any]) -> None:
    """Log the fairness audit, Brier scores, plots and the model card (Markdown and HTML).

    Args:
        assessment: from :func:`credit_risk.card.assess_run`.
        card_metadata: the run's metadata (as in ``metadata.json``) for the card.
    """
    import mlflow

    log_audit(assessment.audit)
    # The method itself is already a run parameter (``calibration`` in the pipeline params).
    mlflow.log_metrics(
        {
            "test_brier_uncalibrated": assessment.calibration.test_brier_uncalibrated,
            "test_brier_calibrated": assessment.calibration.test_brier_calibrated,
        }
    )
    with tempfile.TemporaryDirectory() as folder:
        for name, encoded in assessment.images.items():
            (Path(folder) / name).write_bytes(base64.b64decode(encoded))
        mlflow.log_artifacts(folder, "plots")
    metadata = {**card_metadata, "responsible": assessment.to_json()}
    mlflow.log_text(card_markdown(metadata, inline_images=False), f"card/{CARD_MARKDOWN}")
    mlflow.log_text(card_html(metadata), f"card/{CARD_HTML}")
