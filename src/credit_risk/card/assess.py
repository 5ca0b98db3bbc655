"""The assessment of a training run: fairness audit, calibration check, SHAP summary.

Computed once per run by :func:`assess_run`; stored as JSON (:meth:`Assessment.to_json`) in the
exported model's ``metadata.json`` under ``responsible``, and read back with
:func:`assessment_of`.
"""

from __future__ import annotations

import base64
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.config import Settings
from credit_risk.fairness import (
    DEFAULT_CONFIDENCE,
    SEX_CAVEAT,
    FairnessAudit,
    LimitVerdict,
    audit_predictions,
    combine,
)

RELIABILITY_PNG = "reliability.png"
SHAP_PNG = "shap_summary.png"
SHAP_ROWS = 200
SHAP_TOP = 12


@dataclass(frozen=True)
class CalibrationCheck:
    """The pipeline's calibrator and the test-split Brier score before and after it."""

    method: str  # "none" when the pipeline has no calibrator
    folds: int | None
    test_brier_uncalibrated: float
    test_brier_calibrated: float


@dataclass(frozen=True)
class ShapFeature:
    """One encoded feature's mean |SHAP| on the probability of bad."""

    feature: str
    mean_abs_shap: float


@dataclass(frozen=True)
class Assessment:
    """Fairness, calibration and explanations of a fitted run."""

    audit: FairnessAudit  # test split and out-of-fold ("cv") predictions
    limits_failed: list[str]  # promotion-gate fairness limits broken (empty: none)
    calibration: CalibrationCheck
    shap_top: list[ShapFeature]  # highest mean |SHAP| first
    images: dict[str, str]  # file name -> base64 PNG (reliability diagram, SHAP summary)
    caveat: str = SEX_CAVEAT
    # Limits neither passed nor failed: a group is smaller than the minimum size.
    limits_insufficient: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain, strict-JSON data (as stored under ``responsible`` in ``metadata.json``)."""
        return {
            "fairness": {
                "table": _json_safe(self.audit.table.to_dict(orient="records")),
                "metrics": _json_safe(self.audit.metrics),
                "limits_failed": list(self.limits_failed),
                "limits_insufficient": list(self.limits_insufficient),
                "caveat": self.caveat,
                "min_group_size": self.audit.min_group_size,
                "bootstrap": {
                    "resamples": self.audit.resamples,
                    "confidence": self.audit.confidence,
                },
            },
            "calibration": asdict(self.calibration),
            "explanations": {"shap_top": [asdict(feature) for feature in self.shap_top]},
            "images": dict(self.images),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Assessment:
        """The assessment stored by :meth:`to_json`."""
        fairness = data["fairness"]
        bootstrap = fairness.get("bootstrap") or {}
        audit = FairnessAudit(
            table=pd.DataFrame(fairness["table"]),
            metrics=fairness["metrics"],
            min_group_size=int(fairness.get("min_group_size", 0)),
            resamples=int(bootstrap.get("resamples", 0)),
            confidence=float(bootstrap.get("confidence", DEFAULT_CONFIDENCE)),
        )
        return cls(
            audit=audit,
            limits_failed=list(fairness.get("limits_failed") or []),
            calibration=CalibrationCheck(**data["calibration"]),
            shap_top=[ShapFeature(**row) for row in data["explanations"]["shap_top"]],
            images=dict(data.get("images", {})),
            caveat=fairness.get("caveat", SEX_CAVEAT),
            limits_insufficient=list(fairness.get("limits_insufficient") or []),
        )


def assessment_of(metadata: dict[str, Any]) -> Assessment | None:
    """The assessment in an exported model's metadata; None for a model saved without one."""
    stored = metadata.get("responsible")
    return Assessment.from_json(stored) if stored else None


def fairness_verdict(settings: Settings, audit: FairnessAudit) -> LimitVerdict:
    """The settings' promotion-gate limits judged on the out-of-fold audit.

    The out-of-fold predictions cover the whole training split (800 rows by default), so
    group rates are less noisy than on the test split (e.g. 6 non-foreign workers in 200).
    Attributes with a group under ``settings.fairness_min_group_size`` are not judged.
    """
    return audit.judge_limits(
        settings.fairness_min_disparate_impact,
        settings.fairness_max_equalized_odds_difference,
        split="cv",
        min_group_size=settings.fairness_min_group_size,
    )


def fairness_limits_failed(settings: Settings, audit: FairnessAudit) -> list[str]:
    """The limits of the settings that the out-of-fold audit breaks."""
    return fairness_verdict(settings, audit).failed


def fairness_limits_insufficient(settings: Settings, audit: FairnessAudit) -> list[str]:
    """The limits of the settings left unjudged on the out-of-fold audit (a group too small)."""
    return fairness_verdict(settings, audit).insufficient


def _png_base64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def shap_summary(
    pipeline: Any, applicants: pd.DataFrame, path: Path, rows: int = SHAP_ROWS
) -> list[ShapFeature]:
    """SHAP values of the forest on the encoded features: summary plot and mean |SHAP| ranking.

    The values explain the forest's score before calibration; calibration is monotone, so
    the ranking of features and the direction of their effects are the same after it.
    """
    import matplotlib

    from credit_risk.model import forests_of

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
    return [ShapFeature(feature=names[i], mean_abs_shap=float(ranking[i])) for i in order]


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
) -> Assessment:
    """Fairness, calibration and explanations of a fitted run.

    Args:
        settings: gate limits and policies.
        pipeline: the pipeline fitted on the training split.
        params: its parameters (for the calibration folds).
        x_train, y_train, cv_probability: training split and out-of-fold probabilities.
        x_test, y_test, test_probability: test split and the pipeline's probabilities.
        threshold: the decision threshold (see ``metadata["threshold_rule"]``).
    """
    # Training-side imports here, not at module level: the card renders (credit_risk.card.render)
    # in the serving image, which has no scikit-learn.
    from credit_risk.calibration import (
        brier_before_after,
        calibration_method,
        save_reliability_plot,
    )
    from credit_risk.model import CALIBRATION_FOLDS_KEY
    from credit_risk.scorecard.model import PointsScorecard

    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    options: dict[str, Any] = {
        "min_group_size": settings.fairness_min_group_size,
        "resamples": settings.fairness_bootstrap_resamples,
        "confidence": settings.fairness_confidence,
        "seed": settings.seed,
    }
    audit = combine(
        audit_predictions("test", x_test, y_test, test_probability, threshold, **options),
        audit_predictions("cv", x_train, y_train, cv_probability, threshold, **options),
    )
    with tempfile.TemporaryDirectory() as folder:
        reliability = save_reliability_plot(
            pipeline, x_test, y_test, Path(folder) / RELIABILITY_PNG
        )
        images = {RELIABILITY_PNG: _png_base64(reliability)}
        # A points scorecard explains itself: its points table is in the metadata.
        top: list[ShapFeature] = []
        if not isinstance(pipeline, PointsScorecard):
            top = shap_summary(pipeline, x_test, Path(folder) / SHAP_PNG)
            images[SHAP_PNG] = _png_base64(Path(folder) / SHAP_PNG)
    brier = brier_before_after(pipeline, x_test, y_test)
    return Assessment(
        audit=audit,
        limits_failed=fairness_limits_failed(settings, audit),
        limits_insufficient=fairness_limits_insufficient(settings, audit),
        calibration=CalibrationCheck(
            method=calibration_method(pipeline),
            folds=params.get(CALIBRATION_FOLDS_KEY),
            test_brier_uncalibrated=brier["brier_uncalibrated"],
            test_brier_calibrated=brier["brier_calibrated"],
        ),
        shap_top=top,
        images=images,
    )


def _json_safe(value: Any) -> Any:
    """NaN (a rate over an empty group) becomes None, so metadata.json stays strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
