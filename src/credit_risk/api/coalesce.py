"""Score and log, together, the applicants of requests that arrive in the same event-loop turn.

Under concurrent load, several ``/predict`` requests are parsed and validated in one turn of
the event loop. Scoring each on its own pays the fast path's fixed cost (a kernel call,
calibration, ranking the reasons) and one decision-log commit per request; scoring them as
one batch pays it once. A request never waits for company: the batch is flushed by a callback
queued behind the requests already ready to run, so a lone request is scored at the end of
the turn that received it. Every request still gets its answer only after its own decision
rows are committed to the decision log; the committed rows are then handed to ``after_commit``
(the shadow challenger, :mod:`credit_risk.api.shadow`), after the answers.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from credit_risk.api.metrics import ServiceMetrics
from credit_risk.decision_log import DecisionLog, decision_row
from credit_risk.reasons import DEFAULT_LANGUAGE
from credit_risk.scoring import Scorer

Payload = dict[str, Any]
_Waiting = tuple[Sequence[dict[str, Any]], "asyncio.Future[list[Payload]]", str]


def new_request_id() -> str:
    """A unique, time-ordered id: 48 bits of Unix milliseconds, then 80 random bits (32 hex).

    The layout of UUIDv7 (RFC 9562) without its version bits. Ids that grow with time append
    to the decision log's primary-key index instead of landing on a random page of it, which
    halves what each commit writes; they also sort in the order decisions were made.
    """
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


class DecisionLogUnavailable(RuntimeError):
    """The decisions could not be committed to the log, so they must not be given."""


def build_payloads(
    scorer: Scorer, records: Sequence[dict[str, Any]], languages: Sequence[str] | None = None
) -> tuple[list[Payload], list[dict[str, Any]]]:
    """Score validated applicants; return the response payloads and the decision-log rows.

    Args:
        scorer: the loaded model.
        records: validated applicants.
        languages: the language of each applicant's reason texts (None: English for all).
    """
    decisions = scorer.score_records(records)
    now = datetime.now(UTC)
    version, threshold = scorer.version, scorer.threshold
    payloads, rows = [], []
    for index, (record, decision) in enumerate(zip(records, decisions, strict=True)):
        request_id = new_request_id()
        language = languages[index] if languages is not None else DEFAULT_LANGUAGE
        # Logged as answered: the codes, and the texts the applicant was given.
        reasons = [r.answer(language) for r in decision.reasons]
        payloads.append(
            {
                "request_id": request_id,
                "model_version": version,
                "probability_bad": decision.probability_bad,
                "risk_class": decision.risk_class,
                "risk_label": decision.risk_label,
                "decision": decision.decision,
                "threshold": threshold,
                "reasons": reasons,
            }
        )
        rows.append(
            decision_row(
                request_id,
                now,
                version,
                dict(record),
                decision.probability_bad,
                decision.risk_class,
                decision.decision,
                threshold,
                reasons,
            )
        )
    return payloads, rows


class Coalescer:
    """Collects the applicants of concurrent requests and scores and logs them as one batch.

    Args:
        metrics: the service's collectors (decisions by outcome).
        after_commit: called with the log and the rows of each batch once they are committed and
            answered (the shadow challenger's queue); must not raise.
    """

    def __init__(
        self,
        metrics: ServiceMetrics,
        after_commit: Callable[[DecisionLog, list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.metrics = metrics
        self.after_commit = after_commit
        self._waiting: list[_Waiting] = []
        self._scorer: Scorer | None = None
        self._log: DecisionLog | None = None

    async def submit(
        self,
        scorer: Scorer,
        records: Sequence[dict[str, Any]],
        decision_log: DecisionLog | None,
        language: str = DEFAULT_LANGUAGE,
    ) -> list[Payload]:
        """Score ``records`` (with whatever else arrived in this turn), log them, answer.

        Args:
            scorer: the loaded model.
            records: validated applicants.
            decision_log: where the decisions are committed before they are answered (None:
                not logged, for tests that run without a log).
            language: the language of the reason texts (one of the reason-code table's).

        Raises:
            DecisionLogUnavailable: the decisions could not be committed.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Payload]] = loop.create_future()
        if self._waiting and (scorer is not self._scorer or decision_log is not self._log):
            self._flush()  # a reloaded model or log: never mix two in one batch
        if not self._waiting:
            self._scorer, self._log = scorer, decision_log
            loop.call_soon(self._flush)
        self._waiting.append((records, future, language))
        return await future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        scorer, self._scorer = self._scorer, None
        decision_log, self._log = self._log, None
        if not waiting or scorer is None:
            return
        records = [record for batch, _, _ in waiting for record in batch]
        languages = [language for batch, _, language in waiting for _ in batch]
        try:
            payloads, rows = build_payloads(scorer, records, languages)
        except Exception as error:  # reported to every request of the batch
            for _, future, _ in waiting:
                if not future.done():
                    future.set_exception(error)
            return
        answers = []
        start = 0
        for batch, future, _ in waiting:
            answers.append((future, payloads[start : start + len(batch)]))
            start += len(batch)
        if decision_log is None:
            self._answer(answers, None)
            return
        try:
            committed = decision_log.submit(rows)
        except Exception as error:
            self._answer(answers, error)
            return
        log = decision_log

        def settled(done: asyncio.Future[None]) -> None:
            error = None if done.cancelled() else done.exception() or None
            self._answer(answers, error)
            if error is None and not done.cancelled() and self.after_commit is not None:
                self.after_commit(log, rows)  # answered first: the shadow is off their path

        committed.add_done_callback(settled)

    def _answer(
        self,
        answers: list[tuple[asyncio.Future[list[Payload]], list[Payload]]],
        error: BaseException | None,
    ) -> None:
        for future, payloads in answers:
            if future.done():  # the client went away
                continue
            if error is not None:
                future.set_exception(DecisionLogUnavailable(f"decision log unavailable: {error}"))
                continue
            for payload in payloads:
                self.metrics.decisions.labels(payload["decision"]).inc()
            future.set_result(payloads)
