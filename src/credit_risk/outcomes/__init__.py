"""Realised outcomes of logged decisions: validating, recording and reading them back.

An outcome says what became of an applicant the service decided on: ``good`` (1) or ``bad``
(2), the dataset's target coding, observed at some time after the decision. Outcomes arrive
through ``POST /outcomes`` or ``credit-risk outcomes import FILE`` and are stored beside the
decisions, in the decision-log database (:data:`credit_risk.decision_log.outcomes_table`).

Rules, one transaction per request or file (nothing is ever half-recorded):

- the same outcome sent again is accepted once and reported ``unchanged`` (idempotent);
- a different outcome, or a different observation time, for a decision that already has one is
  refused (:class:`ConflictingOutcomes`) unless a replacement is asked for explicitly;
- an unknown request id is refused, and named (:class:`UnknownRequests`);
- any invalid item refuses the whole batch, naming its line or position (:class:`InvalidOutcomes`).

The reading side, :func:`labelled_decisions`, joins logged decisions with their outcomes, one
row each: realised performance (:mod:`credit_risk.performance`) and training on grown data read
it.
"""

from __future__ import annotations

from credit_risk.outcomes.parse import (
    ConflictingOutcomes,
    InvalidOutcomes,
    Outcome,
    OutcomeError,
    UnknownRequests,
    parse_outcomes,
    read_outcomes_file,
)
from credit_risk.outcomes.read import (
    LABELLED_COLUMNS,
    labelled_decisions,
    read_decisions_with_outcomes,
)
from credit_risk.outcomes.record import import_outcomes, record_outcomes

__all__ = [
    "LABELLED_COLUMNS",
    "ConflictingOutcomes",
    "InvalidOutcomes",
    "Outcome",
    "OutcomeError",
    "UnknownRequests",
    "import_outcomes",
    "labelled_decisions",
    "parse_outcomes",
    "read_decisions_with_outcomes",
    "read_outcomes_file",
    "record_outcomes",
]
