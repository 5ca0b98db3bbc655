"""Adverse-action reasons: the reason-code table, the approved reference, and the ranking.

**Method.** The forest's raw score ``f`` (mean probability of bad over its trees) is split
exactly into one path contribution ``c_j`` per codebook attribute (Saabas, precomputed per leaf
by :mod:`credit_risk.fastpath`): ``f = bias + sum_j c_j``. The served probability is
``p = g(f)``, ``g`` the pipeline's calibrator, non-decreasing (checked when the reference is
built). The :class:`ReasonReference`, stored with the model, is the mean contribution of each
attribute over the training rows the model approves, ``ref_j``, with ``f_ref = bias + sum_j
ref_j`` and ``p_ref = g(f_ref)``. Every approved row has ``f < f_cut`` (the raw score where
``g`` reaches the threshold), so their mean does too: ``p_ref < threshold``. For a rejection
``p >= threshold``, hence

    d_j = c_j - ref_j,   sum_j d_j = f - f_ref > 0,

so at least one attribute has ``d_j > 0``: it raised this applicant's raw score, and with it
(``g`` monotone) the served probability, above that of the approved reference. Each ``d_j`` is
reported on the calibrated log-odds scale, ``d_j * (logit(p) - logit(p_ref)) / (f - f_ref)``:
these add up exactly to ``logit(p) - logit(p_ref)``, the served distance from the reference.

**Reasons** of a rejection are the attributes with ``d_j > 0``, largest first, at most
:data:`MAX_REASONS`; approvals get none. Protected attributes (attribute 9, age, foreign
worker) are never cited, whatever the policy: under ``exclude`` they are not inputs and their
``d_j`` is 0; under ``include`` they are skipped. Then at least one attribute that may be cited
has ``d_j > 0`` whenever the protected ones together do not outweigh the rest. When they do
(only possible under ``include``), no factor that may be cited explains the rejection, and
the rejection carries the single code :data:`FALLBACK_CODE`, which says so and asks for a
review by a person rather than citing a factor that did not raise the risk.

**Points scorecards** (:mod:`credit_risk.scorecard`) give the standard scorecard reasons
instead (:class:`PointsExplainer`): the points the applicant lost on each attribute against
that attribute's best bin, largest first, under the same rules (rejections only, never a
protected attribute, at most :data:`MAX_REASONS`, the same codes). More points mean a lower
probability of bad (the table's calibration slope is negative), so moving a cited attribute to
its best bin would lower this applicant's served probability: each reason raised the risk. A
scorecard whose best possible score is rejected cannot give reasons (it is never promoted or
served); otherwise a rejection under ``exclude`` always lost points on some attribute that may
be cited, and under ``include`` one that lost points only on protected attributes gets
:data:`FALLBACK_CODE`. Contributions are in :data:`UNIT_POINTS` there, :data:`UNIT_LOG_ODDS`
for the forest.

**Gradient boosting** (``--family gbm``, no path contributions to split) is explained by
substitution (:mod:`credit_risk.reasons.substitution`, :class:`SubstitutionExplainer`): each
attribute's reason amount is the drop in the applicant's calibrated log-odds of bad when that
attribute alone is set to the approved training applicants' most common code (or median), under
the same rules and codes.

**Codes.** :data:`REASON_CODES` is the versioned table (code, attribute, condition, English and
Spanish text): one code per value of each categorical attribute (``R01-A11``) and per band of
each numeric one (``R02-B5``: 48 months or more). English texts come from the codebook
(:mod:`credit_risk.schema`); the Spanish ones are translations kept here. The table is saved
in each exported model folder (:data:`REASON_CODES_FILE`) and listed in its metadata; a
changed table needs a new :data:`REASON_CODES_VERSION` (``tests/test_reasons.py`` pins both).
"""

from __future__ import annotations

from credit_risk.reasons.codes import (
    DEFAULT_LANGUAGE,
    FALLBACK,
    FALLBACK_CODE,
    MAX_REASONS,
    NO_REASON,
    REASON_CODES_FILE,
    UNIT_LOG_ODDS,
    UNIT_MEANING,
    UNIT_POINTS,
    ReasonCodes,
    ReasonCodesError,
    ReasonsUnavailable,
    builtin_bytes,
    builtin_table,
    reason_codes_record,
    table_sha256,
)
from credit_risk.reasons.explainers import Explainer, PointsExplainer
from credit_risk.reasons.reference import ReasonReference, build_reference, logit
from credit_risk.reasons.substitution import (
    SUBSTITUTES_ARTIFACT,
    SUBSTITUTES_KEY,
    SUBSTITUTION_MEANING,
    SubstitutionExplainer,
    SubstitutionReference,
    build_substitutes,
    substitution_drops,
)

__all__ = [
    "DEFAULT_LANGUAGE",
    "FALLBACK",
    "FALLBACK_CODE",
    "MAX_REASONS",
    "NO_REASON",
    "REASON_CODES_FILE",
    "SUBSTITUTES_ARTIFACT",
    "SUBSTITUTES_KEY",
    "SUBSTITUTION_MEANING",
    "UNIT_LOG_ODDS",
    "UNIT_MEANING",
    "UNIT_POINTS",
    "Explainer",
    "PointsExplainer",
    "ReasonCodes",
    "ReasonCodesError",
    "ReasonReference",
    "ReasonsUnavailable",
    "SubstitutionExplainer",
    "SubstitutionReference",
    "build_reference",
    "build_substitutes",
    "builtin_bytes",
    "builtin_table",
    "logit",
    "reason_codes_record",
    "substitution_drops",
    "table_sha256",
]
