"""Cost of the realised-performance gauges (``make bench-gauges``).

For windows of N decisions (60% of them with an outcome; SQLite decision log in a temporary
folder), times one refresh of the gauges (:func:`credit_risk.performance.latest_window`: read
the window, then the figures with ``--resamples`` bootstrap resamples), split into reading the
log and computing, median of ``--repeats`` runs. Then times a ``/metrics`` exposition with the
cached gauges against one without them (what a scrape costs on the event loop; the refresh
itself runs in a background thread at most once per ``performance_refresh_seconds``).
Last, what a refresh in its background thread costs the requests of the same process: an
event loop wakes every millisecond for the duration of one refresh of the largest window (it
competes with the refresh for the interpreter lock), and its lateness is compared with the
same loop while nothing else runs.
Other processes on the machine add noise: quote figures from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import call_seconds

from credit_risk.api.metrics import ServiceMetrics
from credit_risk.api.realised import RealisedPerformanceCollector
from credit_risk.config import get_settings
from credit_risk.decision_log import (
    decision_row,
    decisions_table,
    make_engine,
    outcomes_table,
    upgrade_schema,
)
from credit_risk.evaluate.metrics import costs_of
from credit_risk.outcomes import read_decisions_with_outcomes
from credit_risk.performance import assess_window, latest_window
from credit_risk.schema import ATTRIBUTES

APPLICANT = {a.name: a.default for a in ATTRIBUTES}


def build_log(url: str, n: int, now: datetime, seed: int = 0) -> None:
    """``n`` decisions over the last 29 days, 60% with an outcome."""
    rng = np.random.default_rng(seed)
    probability = rng.beta(2, 6, n)
    bad = rng.random(n) < probability
    engine = make_engine(url)
    upgrade_schema(engine)
    decided = [now - timedelta(days=29 * (1 - i / n)) for i in range(n)]
    rows = [
        decision_row(
            f"r{i}",
            decided[i],
            "1",
            APPLICANT,
            float(probability[i]),
            2 if probability[i] >= 1 / 6 else 1,
            "reject" if probability[i] >= 1 / 6 else "approve",
            1 / 6,
            [],
        )
        for i in range(n)
    ]
    labelled = [
        {
            "request_id": f"r{i}",
            "outcome": 2 if bad[i] else 1,
            "observed_at": decided[i] + timedelta(hours=1),
            "recorded_at": now,
            "source": "bench",
            "revision": 1,
        }
        for i in np.flatnonzero(rng.random(n) < 0.6)
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(decisions_table), rows)
        connection.execute(sa.insert(outcomes_table), labelled)
    engine.dispose()


def loop_lateness(busy: threading.Thread | None, seconds: float) -> list[float]:
    """How late a 1 ms sleep wakes up, while ``busy`` runs (or for ``seconds`` if None)."""

    async def ticks() -> list[float]:
        late = []
        if busy is not None:
            busy.start()
        deadline = time.perf_counter() + seconds
        while (busy is not None and busy.is_alive()) or (
            busy is None and time.perf_counter() < deadline
        ):
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            late.append(time.perf_counter() - started - 0.001)
        return late

    return asyncio.run(ticks())


def quantiles_ms(values: list[float]) -> str:
    cuts = statistics.quantiles(values, n=100)
    return (
        f"p50 {cuts[49] * 1e3:.2f} ms, p99 {cuts[98] * 1e3:.2f} ms, max {max(values) * 1e3:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,50000", help="Decisions per window.")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scrapes", type=int, default=500)
    args = parser.parse_args()
    now = datetime.now(UTC)
    print(
        f"refresh of the gauges: median of {args.repeats} runs, {args.resamples} bootstrap "
        "resamples, SQLite log, 60% of decisions labelled"
    )
    print(f"{'decisions':>10} {'labelled':>9} {'read s':>8} {'figures s':>10} {'refresh s':>10}")
    with tempfile.TemporaryDirectory(prefix="bench-gauges-") as folder:
        for n in (int(size) for size in args.sizes.split(",")):
            url = f"sqlite:///{Path(folder) / f'log-{n}.db'}"
            build_log(url, n, now)
            settings = get_settings(
                decision_log_url=url, performance_bootstrap_resamples=args.resamples
            )
            engine = make_engine(url)
            reads, computes, refreshes = [], [], []
            for _ in range(args.repeats):
                started = time.perf_counter()
                frame = read_decisions_with_outcomes(
                    engine, now - timedelta(days=30), now, attributes=False
                )
                read = time.perf_counter() - started
                started = time.perf_counter()
                window = assess_window(frame, "all", costs_of(settings), args.resamples)
                computes.append(time.perf_counter() - started)
                reads.append(read)
                started = time.perf_counter()
                latest_window(engine, settings, now)
                refreshes.append(time.perf_counter() - started)
            print(
                f"{n:>10} {window.outcomes:>9} {statistics.median(reads):>8.3f} "
                f"{statistics.median(computes):>10.3f} {statistics.median(refreshes):>10.3f}"
            )
            engine.dispose()
        engine = make_engine(url)  # the largest window's log
        plain = ServiceMetrics()
        with_gauges = ServiceMetrics()
        collector = RealisedPerformanceCollector(
            lambda: latest_window(engine, settings, now), 3600, 30
        )
        with_gauges.add_collector(collector)
        collector.refresh()
        without = call_seconds(plain.exposition, args.scrapes)
        cached = call_seconds(with_gauges.exposition, args.scrapes)
        # The service freezes its heap once the model is loaded (credit_risk.api.app): full
        # collections then skip the long-lived objects. Likewise here, before timing.
        gc.collect()
        gc.freeze()
        refresh = threading.Thread(target=collector.refresh)
        during = loop_lateness(refresh, 0)
        idle = loop_lateness(None, max(1.0, len(during) * 0.001))
        engine.dispose()
    print(
        f"/metrics exposition over {args.scrapes} calls, figures cached: median "
        f"{statistics.median(cached) * 1e3:.3f} ms with the gauges, "
        f"{statistics.median(without) * 1e3:.3f} ms without"
    )
    print(
        f"event loop lateness (1 ms ticks) during one refresh of {n} decisions: "
        f"{quantiles_ms(during)}"
    )
    print(f"event loop lateness, nothing else running: {quantiles_ms(idle)}")


if __name__ == "__main__":
    main()
