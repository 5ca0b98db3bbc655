"""Optimal binning of the codebook's attributes with optbinning, returned as plain bins.

optbinning's :class:`~optbinning.OptimalBinning` bins every attribute under its declaration
(:mod:`credit_risk.scorecard.declarations`): ordinal codes as ranks with the declared monotone
trend, a code off the scale as a special code in a bin of its own, nominal codes grouped by bad
rate. Each bin holds at least ``min_bin_size`` of the rows, so that its weight of evidence
rests on enough applicants. The result is copied out as :class:`Bin` rows (codes or interval,
counts, weight of evidence): nothing of optbinning is kept, so the fitted scorecard is plain
data, and serving it needs no optbinning.

Weight of evidence and information value are optbinning's (:func:`weights_of_evidence`):
``WoE = ln(share of all goods in the bin / share of all bads in the bin)``, positive where the
bin is safer than the sample. Attributes with an information value under ``min_iv`` are not
selected (0.02 is the usual line below which an attribute "does not predict").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.schema import BY_NAME, Attribute
from credit_risk.scorecard.declarations import BY_ATTRIBUTE, Declaration, Treatment

# The rank given to an ordinal attribute's code off the scale (optbinning's special code).
OFF_SCALE_RANK = -1
UNSEEN = "not in the training data"


@dataclass(frozen=True)
class Bin:
    """One bin of an attribute.

    Attributes:
        label: the bin in words (codebook labels, or a range of values with its unit).
        codes: a categorical attribute's codes in this bin (empty for a numeric one).
        lower: a numeric bin's lowest value (inclusive split; None: no lower bound).
        upper: a numeric bin's upper split (exclusive; None: no upper bound).
        good, bad: training applicants in the bin.
        woe: weight of evidence (0 for a bin no training applicant fell in).
    """

    label: str
    codes: tuple[str, ...]
    lower: float | None
    upper: float | None
    good: int
    bad: int
    woe: float


@dataclass(frozen=True)
class AttributeBins:
    """An attribute's bins and information value, as fitted."""

    declaration: Declaration
    bins: tuple[Bin, ...]
    iv: float

    @property
    def attribute(self) -> str:
        return self.declaration.attribute


def binning_frame(applicants: pd.DataFrame, attributes: Sequence[str]) -> pd.DataFrame:
    """The columns optbinning bins: numbers, ordinal ranks (off-scale codes: -1), nominal codes."""
    columns: dict[str, object] = {}
    for name in attributes:
        declaration = BY_ATTRIBUTE[name]
        values = applicants[name]
        if declaration.treatment is Treatment.ORDINAL:
            ranks = {code: rank for rank, code in enumerate(declaration.scale)}
            ranks |= dict.fromkeys(declaration.off_scale, OFF_SCALE_RANK)
            columns[name] = values.map(ranks).to_numpy(dtype="float64")
        elif declaration.treatment is Treatment.NUMERIC:
            columns[name] = values.to_numpy(dtype="float64")
        else:
            columns[name] = values.astype(str).to_numpy(dtype=object)
    return pd.DataFrame(columns, index=applicants.index)


def _fit_one(
    declaration: Declaration, values: np.ndarray, y: np.ndarray, min_bin_size: float
) -> Any:
    """optbinning's ``OptimalBinning`` of one attribute, fitted under its declaration."""
    from optbinning import OptimalBinning

    nominal = declaration.treatment is Treatment.NOMINAL
    binning = OptimalBinning(
        name=declaration.attribute,
        dtype="categorical" if nominal else "numerical",
        monotonic_trend=declaration.monotonic_trend,
        min_bin_size=min_bin_size,
        special_codes=[OFF_SCALE_RANK] if declaration.off_scale else None,
    )
    return binning.fit(values, y)


def fit_binning(
    applicants: pd.DataFrame,
    y: np.ndarray,
    attributes: Sequence[str],
    min_bin_size: float,
    min_iv: float,
) -> tuple[list[AttributeBins], list[str]]:
    """Bin ``attributes`` of the applicants against ``y`` (1 = bad).

    Args:
        applicants: validated applicants.
        y: 1 for bad, 0 for good.
        attributes: the attributes to bin (codebook names, in codebook order).
        min_bin_size: smallest share of the rows in a bin.
        min_iv: information value an attribute needs to be selected.

    Returns:
        Every attribute's bins, and the names of those selected by information value.
    """
    y = np.asarray(y, dtype=int)
    frame = binning_frame(applicants, attributes)
    fitted = [
        _read_bins(
            BY_ATTRIBUTE[name],
            _fit_one(BY_ATTRIBUTE[name], frame[name].to_numpy(), y, min_bin_size),
        )
        for name in attributes
    ]
    return fitted, [bins.attribute for bins in fitted if bins.iv >= min_iv]


def weights_of_evidence(good: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, float]:
    """Each bin's weight of evidence, and the information value of the bins.

    ``WoE = ln((good / total good) / (bad / total bad))``; a bin without goods or without bads
    gets 0 and adds nothing to the information value (optbinning's convention).
    """
    good, bad = np.asarray(good, dtype="float64"), np.asarray(bad, dtype="float64")
    both = (good > 0) & (bad > 0)
    share_good, share_bad = good / max(good.sum(), 1.0), bad / max(bad.sum(), 1.0)
    woe = np.zeros(len(good))
    woe[both] = np.log(share_good[both] / share_bad[both])
    return woe, float(np.sum((share_good - share_bad)[both] * woe[both]))


def _read_bins(declaration: Declaration, binning: Any) -> AttributeBins:
    """Copy a fitted ``OptimalBinning``'s bins and counts into :class:`Bin` rows."""
    statistics = binning.binning_table
    # Counts of the bins, then of the special codes, then of missing values.
    good_all = np.asarray(statistics.n_nonevent, dtype=np.int64)
    bad_all = np.asarray(statistics.n_event, dtype=np.int64)
    woe_all, iv = weights_of_evidence(good_all, bad_all)
    found: list[Any] = list(binning.splits)
    nominal = declaration.treatment is Treatment.NOMINAL
    n_bins = len(found) if nominal else len(found) + 1
    if len(good_all) != n_bins + 2:
        raise RuntimeError(f"{declaration.attribute}: unexpected optbinning table layout")
    counts = list(
        zip(
            good_all[:n_bins].tolist(),
            bad_all[:n_bins].tolist(),
            woe_all[:n_bins].tolist(),
            strict=True,
        )
    )
    attribute = BY_NAME[declaration.attribute]
    splits = [] if nominal else [float(s) for s in found]
    bins: list[Bin] = []
    if nominal:
        groups = [tuple(str(c) for c in group) for group in found]
        ordered = [tuple(c for c in attribute.codes if c in group) for group in groups]
        for codes, (good, bad, woe) in zip(ordered, counts, strict=True):
            bins.append(Bin(_codes_label(attribute, codes), codes, None, None, good, bad, woe))
        seen = {c for codes in ordered for c in codes}
        unseen = tuple(c for c in attribute.codes if c not in seen)
        if unseen:
            label = f"{_codes_label(attribute, unseen)} ({UNSEEN})"
            bins.append(Bin(label, unseen, None, None, 0, 0, 0.0))
    elif declaration.treatment is Treatment.ORDINAL:
        edges = [-math.inf, *splits, math.inf]
        for i, (good, bad, woe) in enumerate(counts):
            codes = tuple(
                code
                for rank, code in enumerate(declaration.scale)
                if edges[i] <= rank < edges[i + 1]
            )
            bins.append(Bin(_codes_label(attribute, codes), codes, None, None, good, bad, woe))
        if declaration.off_scale:
            good, bad, woe = int(good_all[n_bins]), int(bad_all[n_bins]), float(woe_all[n_bins])
            codes = declaration.off_scale
            label = _codes_label(attribute, codes) + ("" if good + bad else f" ({UNSEEN})")
            bins.append(Bin(label, codes, None, None, good, bad, woe))
    else:
        edges_or_none: list[float | None] = [None, *splits, None]
        for i, (good, bad, woe) in enumerate(counts):
            lower, upper = edges_or_none[i], edges_or_none[i + 1]
            bins.append(
                Bin(_range_label(attribute, lower, upper), (), lower, upper, good, bad, woe)
            )
    return AttributeBins(declaration, tuple(bins), iv)


def _codes_label(attribute: Attribute, codes: Sequence[str]) -> str:
    return "; ".join(attribute.codes[c] for c in codes)


def _range_label(attribute: Attribute, lower: float | None, upper: float | None) -> str:
    """An integer attribute's bin in words: "up to 8", "9 to 11", "44 or more" (with unit)."""
    low = attribute.minimum if lower is None else math.ceil(lower)
    high = attribute.maximum if upper is None else math.ceil(upper) - 1
    if attribute.value_labels:
        return "; ".join(
            attribute.value_labels[v]
            for v in range(int(low or 0), int(high or 0) + 1)
            if v in attribute.value_labels
        )
    unit = f" {attribute.unit}" if attribute.unit else ""
    if lower is None and upper is None:
        return f"any{unit}"
    if lower is None:
        return f"up to {high}{unit}"
    if upper is None:
        return f"{low}{unit} or more"
    return f"{low}{unit}" if low == high else f"{low} to {high}{unit}"
