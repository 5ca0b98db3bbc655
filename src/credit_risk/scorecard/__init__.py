"""The points scorecard family: monotone binning, weight of evidence, integer points.

Built stage by stage, one module each:

- :mod:`~credit_risk.scorecard.declarations`: how each codebook attribute is binned (numeric,
  ordinal with its order and trend, or nominal) and why.
- :mod:`~credit_risk.scorecard.binning`: optimal binning with optbinning, copied out as bins
  with counts, weight of evidence and information value.
- :mod:`~credit_risk.scorecard.table`: the points table (plain, validated data), its scaling
  (base points at base odds, points to double the odds) and calibration.
- :mod:`~credit_risk.scorecard.model`: :class:`PointsScorecard`, the scikit-learn classifier
  that fits the table (logistic regression on WoE, out-of-fold calibration).
- :mod:`~credit_risk.scorecard.lookup`: :class:`PointsLookup`, the fast path that serving
  uses: points, probability and points lost (the reason codes) with numpy.
- :mod:`~credit_risk.scorecard.sql`: the table as SQL ``CASE`` expressions.
- :mod:`~credit_risk.scorecard.report`: CSV, the information-value report and the
  cross-validated cost and ROC AUC.
- :mod:`~credit_risk.scorecard.family`: the scorecard's parameters from the settings.

Importing this package imports neither optbinning nor scikit-learn's estimators until a
scorecard is fitted.
"""

from credit_risk.scorecard.declarations import DECLARATIONS, Declaration, Treatment, Trend
from credit_risk.scorecard.lookup import PointsLookup, bin_indices
from credit_risk.scorecard.table import (
    AttributeRow,
    BinRow,
    Calibration,
    PointsTable,
    Scaling,
)

__all__ = [
    "DECLARATIONS",
    "AttributeRow",
    "BinRow",
    "Calibration",
    "Declaration",
    "PointsLookup",
    "PointsTable",
    "Scaling",
    "Treatment",
    "Trend",
    "bin_indices",
]
