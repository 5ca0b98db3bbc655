"""The shadow report: the challenger's decisions beside the champion's (``credit-risk shadow``).

The service scores every request with the challenger too, off the response path, and logs the
challenger's decision in the decision log's ``shadow_decisions`` table
(:mod:`credit_risk.api.shadow`). This module reads the pairs back and compares them, per
(champion version, challenger version):

- **coverage**: the window's decisions by that champion, and how many have a shadow decision
  (a request served while no challenger was loaded, or whose shadow batch was dropped, has
  none);
- **agreement**: the share of shadowed requests on which the two decisions agree, and the 2x2
  table of decisions. A census of the window's traffic, not an estimate: no interval;
- **score differences**: challenger minus champion ``probability_bad``: mean, and the median,
  90th percentile and largest absolute difference;
- **realised comparison**, on the shadowed decisions that have a realised outcome
  (:mod:`credit_risk.outcomes`): each model's cost per applicant (the cost matrix applied to
  its own decision and the outcome) and Brier score, and the paired difference, challenger
  minus champion, with a percentile bootstrap interval (the labelled pairs resampled with
  replacement, ``performance_bootstrap_resamples`` times at ``performance_confidence``, seeded
  by ``seed``). Lower is better for both; an interval that excludes 0 is a difference the
  labelled rows resolve.

Selection bias: outcomes come back mostly for applicants the *champion* approved (a rejected
applicant gets no credit). On those rows the comparison asks whether the challenger's
rejections would have been right; the applicants the challenger would have approved among
the champion's rejections have no outcome, so the realised comparison cannot credit or blame
the challenger for them.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from credit_risk.config import Settings
from credit_risk.decision_log import decisions_table, make_engine, shadow_table
from credit_risk.evaluate.metrics import CostMatrix, costs_of
from credit_risk.outcomes import read_decisions_with_outcomes
from credit_risk.performance import Estimate
from credit_risk.schema import BAD
from credit_risk.scoring import APPROVE, REJECT

# Resampled cells (resamples x pairs) per step of the bootstrap: bounds its memory.
_CHUNK_CELLS = 2_000_000
SELECTION_BIAS = (
    "Selection bias: outcomes come back mostly for applicants the champion approved. The "
    "realised comparison says whether the challenger's rejections among them would have been "
    "right; the challenger's approvals among the champion's rejections rarely have an outcome."
)

# Columns of :func:`read_shadow_pairs`, in order.
PAIR_COLUMNS = (
    "request_id",
    "decided_at",
    "champion_version",
    "champion_probability",
    "champion_decision",
    "challenger_version",
    "challenger_probability",
    "challenger_decision",
    "outcome",
)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_shadow_pairs(
    engine: Engine, since: datetime | None = None, until: datetime | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """The window's decisions that have a shadow decision, and the window's decisions per
    champion version.

    Args:
        engine: the decision log.
        since, until: decision times, ``since`` included, ``until`` excluded (naive: UTC).

    Returns:
        The pairs (:data:`PAIR_COLUMNS`; ``outcome`` 1 good / 2 bad, nullable) in decision
        order, and the number of decisions of each champion version in the window (shadowed
        or not).
    """
    decisions = read_decisions_with_outcomes(engine, since, until, attributes=False)
    served = decisions.groupby("model_version").size()
    with engine.connect() as connection:
        has_shadow = sa.inspect(connection).has_table(shadow_table.name)
        rows: list[Any] = []
        if has_shadow and len(decisions):
            s, d = shadow_table, decisions_table
            # The window is the decisions' (a shadow row is written a little after its own).
            query = sa.select(
                s.c.request_id, s.c.model_version, s.c.probability_bad, s.c.decision
            ).select_from(s.join(d, d.c.request_id == s.c.request_id))
            if since is not None:
                query = query.where(d.c.created_at >= _utc(since))
            if until is not None:
                query = query.where(d.c.created_at < _utc(until))
            rows = list(connection.execute(query))
    shadow = pd.DataFrame(
        rows,
        columns=[
            "request_id",
            "challenger_version",
            "challenger_probability",
            "challenger_decision",
        ],
    ).astype({"request_id": "str", "challenger_version": "str"})
    champion = decisions.rename(
        columns={
            "model_version": "champion_version",
            "probability_bad": "champion_probability",
            "decision": "champion_decision",
        }
    )
    pairs = champion.merge(shadow, on="request_id", how="inner", sort=False)
    pairs["challenger_probability"] = pairs["challenger_probability"].astype("float64")
    pairs["challenger_decision"] = pairs["challenger_decision"].astype("str")
    return pairs[list(PAIR_COLUMNS)].reset_index(drop=True), served


@dataclass(frozen=True)
class RealisedComparison:
    """Both models' decisions against the realised outcomes of the labelled pairs."""

    labelled: int
    bad: int
    champion_cost: float
    challenger_cost: float
    cost_difference: Estimate  # challenger - champion, per applicant
    champion_brier: float
    challenger_brier: float
    brier_difference: Estimate  # challenger - champion


@dataclass(frozen=True)
class PairReport:
    """The comparison of one champion version with one challenger version."""

    champion_version: str
    challenger_version: str
    decisions: int  # the champion's decisions in the window
    shadowed: int
    agreement: float
    # (champion decision, challenger decision) -> count
    table: dict[str, int]
    mean_difference: float
    median_abs_difference: float
    p90_abs_difference: float
    max_abs_difference: float
    first: datetime | None
    last: datetime | None
    realised: RealisedComparison | None = None


@dataclass
class ShadowReport:
    """Every (champion, challenger) pair of the window."""

    since: datetime | None
    until: datetime | None
    pairs: list[PairReport] = field(default_factory=list)
    confidence: float = 0.95
    resamples: int = 0
    unshadowed: dict[str, int] = field(default_factory=dict)  # champion version -> decisions

    def text(self) -> str:
        """The report as the CLI prints it."""
        span = f"from {_when(self.since, 'the start')} to {_when(self.until, 'now')}"
        if not self.pairs:
            lines = [f"shadow decisions {span}: none"]
            lines += [
                f"  champion v{v}: {n} decision(s), none scored in shadow"
                for v, n in sorted(self.unshadowed.items())
            ]
            return "\n".join(lines)
        interval = (
            f"{self.confidence:.0%} paired bootstrap interval, {self.resamples} resamples"
            if self.resamples
            else "no intervals (0 resamples)"
        )
        lines = [f"shadow decisions {span}"]
        for pair in self.pairs:
            t = pair.table
            lines += [
                "",
                f"champion v{pair.champion_version} vs challenger v{pair.challenger_version}: "
                f"{pair.shadowed} of {pair.decisions} decision(s) scored in shadow "
                f"({_when(pair.first)} .. {_when(pair.last)})",
                f"  agreement {pair.agreement:.1%}   both approve {t['approve/approve']}, "
                f"both reject {t['reject/reject']}, champion approves and challenger rejects "
                f"{t['approve/reject']}, champion rejects and challenger approves "
                f"{t['reject/approve']}",
                f"  probability_bad, challenger - champion: mean {pair.mean_difference:+.4f}; "
                f"|difference| median {pair.median_abs_difference:.4f}, "
                f"90th percentile {pair.p90_abs_difference:.4f}, "
                f"max {pair.max_abs_difference:.4f}",
            ]
            realised = pair.realised
            if realised is None:
                lines.append("  realised: no shadowed decision has an outcome yet")
                continue
            lines += [
                f"  realised, on {realised.labelled} labelled pair(s) ({realised.bad} bad); "
                f"challenger - champion, lower is better ({interval}):",
                f"    cost per applicant  champion {realised.champion_cost:.3f}  challenger "
                f"{realised.challenger_cost:.3f}  difference "
                f"{_signed(realised.cost_difference)}",
                f"    Brier score         champion {realised.champion_brier:.4f}  challenger "
                f"{realised.challenger_brier:.4f}  difference "
                f"{_signed(realised.brier_difference, 4)}",
            ]
        if any(p.realised is not None for p in self.pairs):
            lines += ["", SELECTION_BIAS]
        return "\n".join(lines)

    def to_json(self) -> str:
        """The report as JSON (a figure that cannot be computed is null)."""
        return json.dumps(_no_nan(asdict(self)), default=str, indent=1, allow_nan=False)


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value


def _when(moment: datetime | None, unbounded: str = "?") -> str:
    return unbounded if moment is None else moment.isoformat(timespec="seconds")


def _signed(estimate: Estimate, digits: int = 3) -> str:
    if math.isnan(estimate.value):
        return "n/a"
    text = f"{estimate.value:+.{digits}f}"
    if not math.isnan(estimate.low):
        text += f" [{estimate.low:+.{digits}f}, {estimate.high:+.{digits}f}]"
    return text


def row_costs(bad: np.ndarray, decisions: np.ndarray, costs: CostMatrix) -> np.ndarray:
    """Each decision's cost under the cost matrix (approve a bad one, reject a good one)."""
    approved = decisions == APPROVE
    return np.where(approved & bad, costs.bad_accepted, 0.0) + np.where(
        ~approved & ~bad, costs.good_rejected, 0.0
    )


def paired_bootstrap(
    differences: np.ndarray, resamples: int, confidence: float, seed: int
) -> Estimate:
    """Mean of paired differences with a percentile bootstrap interval (pairs resampled)."""
    n = len(differences)
    point = float(differences.mean()) if n else math.nan
    if not n or not resamples:
        return Estimate(point, n=n)
    rng = np.random.default_rng(seed)
    means = []
    chunk = max(1, _CHUNK_CELLS // n)
    for start in range(0, resamples, chunk):
        drawn = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        means.append(differences[drawn].mean(axis=1))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(np.concatenate(means), [tail, 100 - tail])
    return Estimate(point, float(low), float(high), n)


def realised_comparison(
    pairs: pd.DataFrame, costs: CostMatrix, resamples: int, confidence: float, seed: int
) -> RealisedComparison | None:
    """Both models against the outcomes of the labelled pairs (None: no labelled pair)."""
    labelled = pairs[pairs["outcome"].notna()]
    if labelled.empty:
        return None
    bad = labelled["outcome"].to_numpy(dtype="int64") == BAD
    champion_cost = row_costs(bad, labelled["champion_decision"].to_numpy(dtype="str"), costs)
    challenger_cost = row_costs(bad, labelled["challenger_decision"].to_numpy(dtype="str"), costs)
    champion_brier = (labelled["champion_probability"].to_numpy() - bad) ** 2
    challenger_brier = (labelled["challenger_probability"].to_numpy() - bad) ** 2
    return RealisedComparison(
        labelled=len(labelled),
        bad=int(bad.sum()),
        champion_cost=float(champion_cost.mean()),
        challenger_cost=float(challenger_cost.mean()),
        cost_difference=paired_bootstrap(
            challenger_cost - champion_cost, resamples, confidence, seed
        ),
        champion_brier=float(champion_brier.mean()),
        challenger_brier=float(challenger_brier.mean()),
        brier_difference=paired_bootstrap(
            challenger_brier - champion_brier, resamples, confidence, seed + 1
        ),
    )


def compare_pair(
    pairs: pd.DataFrame,
    decisions: int,
    costs: CostMatrix,
    resamples: int,
    confidence: float,
    seed: int,
) -> PairReport:
    """The report of one (champion, challenger) pair's rows (all of one pair)."""
    champion, challenger = pairs["champion_decision"], pairs["challenger_decision"]
    table = {
        f"{a}/{b}": int(((champion == a) & (challenger == b)).sum())
        for a in (APPROVE, REJECT)
        for b in (APPROVE, REJECT)
    }
    difference = (pairs["challenger_probability"] - pairs["champion_probability"]).to_numpy()
    absolute = np.abs(difference)
    return PairReport(
        champion_version=str(pairs["champion_version"].iloc[0]),
        challenger_version=str(pairs["challenger_version"].iloc[0]),
        decisions=decisions,
        shadowed=len(pairs),
        agreement=float((champion == challenger).mean()),
        table=table,
        mean_difference=float(difference.mean()),
        median_abs_difference=float(np.median(absolute)),
        p90_abs_difference=float(np.percentile(absolute, 90)),
        max_abs_difference=float(absolute.max()),
        first=pairs["decided_at"].min().to_pydatetime(),
        last=pairs["decided_at"].max().to_pydatetime(),
        realised=realised_comparison(pairs, costs, resamples, confidence, seed),
    )


def shadow_report(
    settings: Settings, since: datetime | None = None, until: datetime | None = None
) -> ShadowReport:
    """Compare the logged shadow decisions with the champion's, pair by pair.

    Args:
        settings: the decision log (``decision_log_url``), the cost matrix, and the bootstrap
            (``performance_bootstrap_resamples``, ``performance_confidence``, ``seed``).
        since, until: decision times, ``since`` included, ``until`` excluded (naive: UTC).
    """
    engine = make_engine(settings.decision_log_url)
    try:
        pairs, served = read_shadow_pairs(engine, since, until)
    finally:
        engine.dispose()
    resamples = settings.performance_bootstrap_resamples
    confidence = settings.performance_confidence
    report = ShadowReport(
        since=_utc(since) if since else None,
        until=_utc(until) if until else None,
        confidence=confidence,
        resamples=resamples,
    )
    costs = costs_of(settings)
    for (champion, _), rows in pairs.groupby(["champion_version", "challenger_version"], sort=True):
        report.pairs.append(
            compare_pair(rows, int(served[champion]), costs, resamples, confidence, settings.seed)
        )
    shadowed = set(pairs["champion_version"])
    report.unshadowed = {str(v): int(n) for v, n in served.items() if v not in shadowed}
    return report
