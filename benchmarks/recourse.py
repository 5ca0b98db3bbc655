"""Recourse for the shipped rejections: latency, coverage and checks (``make bench-recourse``).

Without ``--model``, a forest is fitted with the training run's protocol: the search's
starting hyperparameters (``DEFAULT_TRIAL``), ``Settings.n_estimators`` trees, the settings'
calibration and threshold rule, on the seeded stratified training split; ``--model DIR`` uses
an exported model folder instead (e.g. the tuned champion). Then, for every shipped
applicant the model rejects, :meth:`credit_risk.recourse.RecourseSearch.suggest` runs once
(after one warm-up call) and is timed in this process, single-threaded (no HTTP): wall time
(``perf_counter``) and the thread's CPU time (``thread_time``), which a shared machine's load
inflates far less. Printed:

- the actionable table (what may change, and how);
- latency over all rejections: wall p50, p90, p99, max and CPU p50, p90 (ms), and the
  machine's load average;
- how many rejections got 0, 1, 2, 3 suggestions, over all rejections and over those of the
  held-out test split (rows the model did not train on: a model memorises its training rows,
  whose rejections are harder to reverse);
- how many attributes the suggestions change;
- how often the coarse-to-fine descent missed a cheaper single change: for every suggestion
  that changes one numeric attribute, every cell of it cheaper than the one suggested is
  scored; a miss is one of them that would also have been approved;
- violations, checked from scratch on every suggestion by
  :func:`credit_risk.recourse.violations` (must be 0): an attribute that may not change, a
  move its row does not allow, or a decision that re-scoring does not approve.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fitted import fit_scorer

from credit_risk.config import get_settings
from credit_risk.data import read_applicants
from credit_risk.recourse import RecourseSearch, Suggestion, actionable_table, violations
from credit_risk.scoring import REJECT, Scorer


def fitted_scorer(trees: int | None) -> tuple[Scorer, list[dict[str, Any]]]:
    """The served model's defaults fitted on the training split; and the test split's rows."""
    from credit_risk.model import DEFAULT_TRIAL

    settings = get_settings()
    params = {
        **DEFAULT_TRIAL,
        "n_estimators": trees or settings.n_estimators,
        "calibration": settings.calibration,
        "calibration_folds": settings.calibration_folds,
    }
    scorer, x_test = fit_scorer(settings, params, "bench-recourse", "defaults")
    return scorer, x_test.to_dict("records")


def _cheaper_flip(search: RecourseSearch, record: dict[str, Any], suggestion: Suggestion) -> bool:
    """Whether a cheaper value of a one-attribute suggestion's attribute is approved too."""
    (attribute,) = suggestion.attributes
    cheaper = [v for v, c in search.options(record, attribute) if c < suggestion.cost - 1e-12]
    probability = search.probabilities(record, [{attribute: v} for v in cheaper])
    return bool((probability < search.scorer.threshold).any())


def _key(record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(record.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="an exported model folder (default: fit)")
    parser.add_argument("--trees", type=int, help="trees of the fitted forest (default: 500)")
    parser.add_argument("--limit", type=int, help="only the first N rejections")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.model:
        scorer, held_out = Scorer.from_folder(args.model), []
        source = f"model folder {args.model}"
    else:
        scorer, held_out = fitted_scorer(args.trees)
        source = "the served defaults fitted on the training split"
    settings = get_settings()
    records = read_applicants(settings.data_path).features.to_dict("records")
    decisions = scorer.score_records(records)
    rejected = [r for r, d in zip(records, decisions, strict=True) if d.decision == REJECT]
    rejected = rejected[: args.limit] if args.limit else rejected
    held = {_key(r) for r in held_out}
    search = RecourseSearch(scorer)
    search.suggest(rejected[0])  # warm-up: the kernel, the first encodings

    times, cpu, scored = [], [], []
    counts: Counter[int] = Counter()
    held_counts: Counter[int] = Counter()
    sizes: Counter[int] = Counter()
    broken = singles = missed = 0
    for record in rejected:
        begin, begin_cpu = time.perf_counter(), time.thread_time()
        result = search.suggest(record)
        times.append(time.perf_counter() - begin)
        cpu.append(time.thread_time() - begin_cpu)
        scored.append(result.scored)
        counts[len(result.suggestions)] += 1
        if _key(record) in held:
            held_counts[len(result.suggestions)] += 1
        for suggestion in result.suggestions:
            sizes[len(suggestion.attributes)] += 1
            broken += bool(violations(scorer, record, suggestion))
            if len(suggestion.attributes) == 1 and isinstance(
                record[suggestion.attributes[0]], int
            ):
                singles += 1
                missed += _cheaper_flip(search, record, suggestion)
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())

    print("\n| attribute | may change | why |\n|---|---|---|")
    for attribute, allowed, why in actionable_table():
        print(f"| `{attribute}` | {allowed} | {why} |")
    ms, cpu_ms = 1000 * np.asarray(times), 1000 * np.asarray(cpu)
    print(
        f"\n{source}: {len(records)} shipped applicants, {len(rejected)} rejected "
        f"(threshold {scorer.threshold:.4f}), one search each, in process\n"
    )
    print(
        "| wall p50 (ms) | p90 | p99 | max | CPU p50 (ms) | p90 | "
        "candidates scored, median (max) | load |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    print(
        f"| {np.percentile(ms, 50):.1f} | {np.percentile(ms, 90):.1f} | "
        f"{np.percentile(ms, 99):.1f} | {ms.max():.1f} | {np.percentile(cpu_ms, 50):.1f} | "
        f"{np.percentile(cpu_ms, 90):.1f} | {np.median(scored):.0f} ({max(scored)}) | {load} |"
    )
    print("\n| rejections | with 0 / 1 / 2 / 3 suggestions |\n|---|---|")
    print(f"| all {len(rejected)} | {' / '.join(str(counts[k]) for k in range(4))} |")
    if held_counts:
        total = sum(held_counts.values())
        shares = " / ".join(str(held_counts[k]) for k in range(4))
        print(f"| {total} of the held-out test split | {shares} |")
    n = sum(sizes.values())
    print(
        f"\n{n} suggestions: changing 1 / 2 / 3 attributes: "
        f"{' / '.join(str(sizes[k]) for k in (1, 2, 3))}; violations: {broken}"
    )
    print(
        f"single numeric changes: {singles}; a cheaper cell would also have been approved "
        f"for {missed}"
    )
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
