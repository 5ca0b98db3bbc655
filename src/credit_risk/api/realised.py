"""The latest window's realised performance as Prometheus gauges, computed off the request path.

A scrape of ``/metrics`` reads the figures last computed; when they are older than
``performance_refresh_seconds`` (or absent), the scrape starts one background computation
(:func:`credit_risk.performance.latest_window`: the decisions of the last
``performance_window_days`` days, with their outcomes and bootstrap intervals) and answers at
once with what it has. So a scrape never waits for the database or the bootstrap, a service
that nobody scrapes computes nothing, and at most one computation runs at a time. The first
scrape after start has no realised figures yet, only the refresh gauges; the next one has them.
How long a computation took is itself a gauge.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:  # the serving image has no scikit-learn, which performance needs
    from credit_risk.performance import Estimate, WindowPerformance

log = logging.getLogger(__name__)

PREFIX = "credit_risk_realised"
_ESTIMATES = {
    "bad_rate_approved": "Realised bad rate among approved decisions with an outcome",
    "cost_per_labelled_decision": "Realised cost per decision with an outcome (cost matrix 5:1)",
    "roc_auc": "ROC AUC of probability_bad on decisions with an outcome",
    "calibration_gap": "Observed minus predicted bad rate on decisions with an outcome",
}


class RealisedPerformanceCollector(Collector):
    """Gauges of :class:`~credit_risk.performance.WindowPerformance`, refreshed in a thread.

    Args:
        compute: the latest window's figures (runs in a background thread).
        refresh_seconds: figures older than this are recomputed at the next scrape.
        window_days: the window's length, exported as a gauge.
    """

    def __init__(
        self,
        compute: Callable[[], WindowPerformance | None],
        refresh_seconds: float,
        window_days: int,
    ) -> None:
        self._compute = compute
        self._refresh_seconds = refresh_seconds
        self._window_days = window_days
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._latest: WindowPerformance | None = None
        self._computed_at = -math.inf  # monotonic
        self._updated = math.nan  # wall clock of the last success
        self._duration = math.nan
        self._failures = 0

    def refresh(self) -> None:
        """Compute the figures now, in this thread (the background thread runs this)."""
        started = time.perf_counter()
        try:
            latest = self._compute()
        except Exception:  # reported as a failure count; the last figures stay
            log.exception("realised performance refresh failed")
            with self._lock:
                self._failures += 1
                self._computed_at = time.monotonic()
            return
        with self._lock:
            self._duration = time.perf_counter() - started
            self._computed_at = time.monotonic()
            if latest is not None:
                self._latest = latest
                self._updated = time.time()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a running refresh to finish (tests and benchmarks)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _start_refresh_if_stale(self) -> None:
        with self._lock:
            running = self._thread is not None and self._thread.is_alive()
            fresh = time.monotonic() - self._computed_at < self._refresh_seconds
            if running or fresh:
                return
            self._thread = threading.Thread(
                target=self.refresh, name="realised-performance", daemon=True
            )
            self._thread.start()

    def describe(self) -> Iterator[Metric]:
        """The metric names, without computing anything (the registry asks at registration)."""
        yield from self._families(None)

    def collect(self) -> Iterator[Metric]:
        self._start_refresh_if_stale()
        with self._lock:
            latest = self._latest
        yield from self._families(latest)

    def _families(self, latest: WindowPerformance | None) -> Iterator[Metric]:
        gauges = {
            "window_days": (
                "Length of the realised-performance window (decisions of the last N days)",
                self._window_days,
            ),
            "refresh_duration_seconds": (
                "Time the last realised-performance computation took",
                self._duration,
            ),
            "last_refresh_timestamp_seconds": (
                "When the realised figures were last computed (Unix time)",
                self._updated,
            ),
        }
        for name, (documentation, value) in gauges.items():
            yield GaugeMetricFamily(f"{PREFIX}_{name}", documentation, value=value)
        yield CounterMetricFamily(
            f"{PREFIX}_refresh_failures",
            "Realised-performance computations that failed",
            value=self._failures,
        )
        decisions = GaugeMetricFamily(
            f"{PREFIX}_decisions", "Decisions in the window", labels=["decision"]
        )
        outcomes = GaugeMetricFamily(
            f"{PREFIX}_outcomes", "Decisions in the window with an outcome", labels=["decision"]
        )
        estimates = {
            name: GaugeMetricFamily(
                f"{PREFIX}_{name}",
                f"{documentation}; bound: estimate, or the bootstrap interval's low and high",
                labels=["bound"],
            )
            for name, documentation in _ESTIMATES.items()
        }
        if latest is not None:
            decisions.add_metric(["approve"], latest.approved)
            decisions.add_metric(["reject"], latest.rejected)
            outcomes.add_metric(["approve"], latest.outcomes_approved)
            outcomes.add_metric(["reject"], latest.outcomes_rejected)
            values: dict[str, Estimate] = {
                "bad_rate_approved": latest.bad_rate_approved,
                "cost_per_labelled_decision": latest.cost,
                "roc_auc": latest.roc_auc,
                "calibration_gap": latest.calibration_gap,
            }
            for name, estimate in values.items():
                estimates[name].add_metric(["estimate"], estimate.value)
                estimates[name].add_metric(["low"], estimate.low)
                estimates[name].add_metric(["high"], estimate.high)
        yield decisions
        yield outcomes
        yield from estimates.values()
