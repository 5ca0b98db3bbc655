"""The shadow challenger: every logged decision scored again by the challenger, after its answer.

The coalescer hands each batch of decision rows over once they are committed and answered
(:class:`credit_risk.api.coalesce.Coalescer`, ``committed``); handing over is appending to a
queue. A thread of its own takes everything queued, scores it with the challenger as one batch
(the fast path's kernel and ONNX Runtime release the interpreter lock while they run), and
commits the challenger's decisions to the decision log's ``shadow_decisions`` table in one
transaction (:meth:`credit_risk.decision_log.DecisionLog.write_shadow`). Then it pauses
``shadow_interval_seconds`` before the next round, so the requests' commits meet few shadow
commits.

Nothing here can fail or delay a request: a challenger that raises, or a log that refuses the
shadow rows, is logged and counted (``credit_risk_shadow_errors_total``) and that batch is
dropped; past ``shadow_max_pending`` queued applicants new ones are dropped and counted
(``credit_risk_shadow_dropped_total``). The challenger's decisions are never returned: they
exist only in the log and in the agreement counter (``credit_risk_shadow_decisions_total``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from credit_risk.api.metrics import ServiceMetrics
from credit_risk.decision_log import DecisionLog
from credit_risk.scoring import APPROVE, REJECT, Scorer

log = logging.getLogger(__name__)

# At most one error message per this many seconds (a broken challenger fails every batch).
_ERROR_LOG_SECONDS = 60.0

_Queued = tuple[Scorer, DecisionLog, Sequence[dict[str, Any]]]


def shadow_rows(
    challenger: Scorer, decision_rows: Sequence[dict[str, Any]], scored_at: datetime
) -> list[dict[str, Any]]:
    """The challenger's decisions on logged applicants, as rows of ``shadow_decisions``.

    Args:
        challenger: the challenger model.
        decision_rows: rows of the decision log (their ``request_id`` and ``input``).
        scored_at: when they were scored.

    Raises:
        Exception: whatever the challenger raises (the caller drops the batch).
    """
    if not decision_rows:
        return []
    probability, _ = challenger.explain_records([row["input"] for row in decision_rows])
    threshold = challenger.threshold
    version = challenger.version
    return [
        {
            "request_id": row["request_id"],
            "scored_at": scored_at,
            "model_version": version,
            "probability_bad": p,
            "decision": REJECT if p >= threshold else APPROVE,
            "threshold": threshold,
        }
        for row, p in zip(decision_rows, probability.tolist(), strict=True)
    ]


class ShadowScorer:
    """Scores committed decisions with the challenger in a background thread.

    Args:
        metrics: the service's collectors (the shadow counters are added to them).
        max_pending: applicants queued beyond which new ones are dropped.
        interval: seconds to pause between two rounds.

    Attributes:
        challenger: the model scoring in shadow (None: no shadow scoring). Replaced as a whole
            by a reload; each queued batch keeps the challenger that was current when it was
            queued, so its rows name the version that scored them.
    """

    def __init__(self, metrics: ServiceMetrics, max_pending: int, interval: float) -> None:
        self.challenger: Scorer | None = None
        self.max_pending = max_pending
        self.interval = interval
        self._queue: deque[_Queued] = deque()
        self._pending = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error_log = -_ERROR_LOG_SECONDS
        self.decisions = Counter(
            "credit_risk_shadow_decisions",
            "Shadow decisions logged, by agreement with the champion's",
            ["agreement"],
            registry=metrics.registry,
        )
        self.errors = Counter(
            "credit_risk_shadow_errors",
            "Shadow batches dropped because the challenger or the log failed",
            ["stage"],
            registry=metrics.registry,
        )
        self.dropped = Counter(
            "credit_risk_shadow_dropped",
            "Applicants not scored in shadow because too many were waiting",
            registry=metrics.registry,
        )

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)
        self._thread.start()

    def submit(self, decision_log: DecisionLog | None, rows: Sequence[dict[str, Any]]) -> None:
        """Queue committed decision rows for the challenger (a no-op without one). Never raises
        into the caller: the request these rows answered is already answered."""
        challenger = self.challenger
        if challenger is None or decision_log is None or self._thread is None or not rows:
            return
        with self._lock:
            if self._pending + len(rows) > self.max_pending:
                self.dropped.inc(len(rows))
                self._error_once(
                    "shadow queue full (%d applicants waiting): dropped %d",
                    self._pending,
                    len(rows),
                )
                return
            self._queue.append((challenger, decision_log, rows))
            self._pending += len(rows)
        self._wake.set()

    def close(self, timeout: float = 30.0) -> None:
        """Score and log what is queued, then stop the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        self._wake.set()
        thread.join(timeout)

    def pending(self) -> int:
        """Applicants queued and not yet scored."""
        return self._pending

    def _take(self) -> list[_Queued]:
        with self._lock:
            taken = list(self._queue)
            self._queue.clear()
            self._pending = 0
        return taken

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            taken = self._take()
            if taken:
                self._process(taken)
            if self._stopping.is_set():
                if not self._queue:
                    return
                continue
            # Let more queue up: one batch and one commit per round (or stop sooner).
            self._stopping.wait(self.interval)

    def _process(self, taken: list[_Queued]) -> None:
        """Score and log consecutive items that share a challenger and a log as one batch."""
        start = 0
        while start < len(taken):
            challenger, decision_log, _ = taken[start]
            end = start
            while (
                end < len(taken) and taken[end][0] is challenger and taken[end][1] is decision_log
            ):
                end += 1
            rows = [row for _, _, batch in taken[start:end] for row in batch]
            self._score_and_log(challenger, decision_log, rows)
            start = end

    def _score_and_log(
        self, challenger: Scorer, decision_log: DecisionLog, rows: list[dict[str, Any]]
    ) -> None:
        try:
            shadow = shadow_rows(challenger, rows, datetime.now(UTC))
        except Exception:
            self.errors.labels("score").inc()
            self._error_once(
                "challenger v%s failed to score %d applicants; dropped them",
                challenger.version,
                len(rows),
                exc_info=True,
            )
            return
        try:
            decision_log.write_shadow(shadow)
        except Exception:
            self.errors.labels("log").inc()
            self._error_once(
                "shadow decisions of %d applicants could not be logged; dropped them",
                len(shadow),
                exc_info=True,
            )
            return
        agreed = sum(s["decision"] == r["decision"] for s, r in zip(shadow, rows, strict=True))
        self.decisions.labels("agree").inc(agreed)
        self.decisions.labels("disagree").inc(len(shadow) - agreed)

    def _error_once(self, message: str, *args: Any, exc_info: bool = False) -> None:
        """Log an error, at most once per :data:`_ERROR_LOG_SECONDS` (the counters count all)."""
        now = time.monotonic()
        if now - self._last_error_log >= _ERROR_LOG_SECONDS:
            self._last_error_log = now
            log.error(message, *args, exc_info=exc_info)
