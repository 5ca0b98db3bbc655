"""The model's life cycle end to end, on a draw of German Credit (``make bench-lifecycle``).

Protocol (every step through the project's own entry points):

1. ``german.data`` is split once (stratified, ``--seed``): ``--base-rows`` applicants form the
   base file (a CSV) that the first champion is trained on (``credit-risk train``'s sequence,
   fixed parameters); the others are the applicants who will arrive later.
2. Month after month, ``--per-month`` of them arrive, drawn without replacement and tilted
   towards applicants whose checking account is overdrawn or below 200 DM (``A11``, ``A12``),
   more so each month (weight ``exp(shift x month)`` for them, 1 for the others): the
   population shifts towards risk. They are scored one by one through the API (``POST
   /predict`` of the FastAPI app, serving the exported champion), which logs every decision.
3. Outcomes arrive a month late: after month m, the realised classes of month m-1's applicants
   are written to a CSV and recorded with ``credit-risk outcomes import``.
4. The monitor-and-retrain flow runs on the month's decisions: drift check, then the
   retraining guard (rows the champion has not seen), then, when both say so, the training flow
   with outcomes (``CREDIT_RISK_TRAIN_WITH_OUTCOMES=true``: base file + labelled decisions, the
   newest quarter held out of time), whose promotion gate promotes or keeps with its evidence.

Prints one block per month: arrivals and their share of ``A11``, outcomes imported, the drift
verdict, the guard's reason or the retrain's data and the gate's decision with its evidence.
The run's stores live in ``--workdir`` (a temporary folder by default).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "raw" / "german.data"
# The population drifts towards applicants with little or no balance on their checking account.
SHIFTED = ("checking_account_status", ("A11", "A12"))


@dataclass
class MonthReport:
    """What happened in one simulated month."""

    month: int
    arrived: int
    shifted_share: float
    outcomes_imported: int
    drift: bool
    drift_reasons: list[str]
    retrain_skipped: str | None = None
    retrained: dict[str, Any] | None = None
    champion_version: str | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"month {self.month}: {self.arrived} applicants scored through the API "
            f"({self.shifted_share:.0%} with {SHIFTED[0]} in {'/'.join(SHIFTED[1])}); "
            f"{self.outcomes_imported} outcomes imported",
            "  drift: "
            + ("yes: " + "; ".join(self.drift_reasons[:3]) if self.drift else "none found"),
        ]
        if self.retrain_skipped:
            out.append(f"  retraining skipped: {self.retrain_skipped}")
        if self.retrained:
            gate = self.retrained.get("gate") or {}
            out.append(
                f"  retrained: v{self.retrained['model_version']} on "
                f"{self.retrained.get('data_rows', '?')}"
            )
            out.append(f"  gate: {self.retrained['reason']}")
            if gate.get("summary"):
                out.append(f"    evidence: {gate['summary']}")
            out += [f"    note: {note}" for note in gate.get("notes", [])]
        out.append(f"  champion after the month: v{self.champion_version} ({self.seconds:.0f} s)")
        return out


def split_population(base_rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Base file rows and arriving applicants: features plus ``is_bad``, stratified."""
    from sklearn.model_selection import train_test_split

    from credit_risk.data import read_applicants

    dataset = read_applicants(DATA)
    assert dataset.target is not None
    frame = dataset.features.assign(is_bad=dataset.target.to_numpy())
    base, arriving = train_test_split(
        frame, train_size=base_rows, random_state=seed, stratify=frame["is_bad"]
    )
    return base.reset_index(drop=True), arriving.reset_index(drop=True)


def write_uci_csv(frame: pd.DataFrame, path: Path) -> Path:
    """A CSV with the schema's columns and the class 1 good / 2 bad."""
    from credit_risk.schema import FEATURE_NAMES, TARGET

    out = frame[list(FEATURE_NAMES)].copy()
    out[TARGET] = np.where(frame["is_bad"] == 1, 2, 1)
    out.to_csv(path, index=False)
    return path


def in_shifted_group(applicants: pd.DataFrame) -> np.ndarray:
    return applicants[SHIFTED[0]].isin(SHIFTED[1]).to_numpy()


def draw_month(
    pool: pd.DataFrame, size: int, month: int, shift: float, rng: np.random.Generator
) -> pd.DataFrame:
    """``size`` applicants from the pool, tilted towards the shifted group as months pass."""
    tilted = in_shifted_group(pool)
    weight = np.where(tilted, np.exp(shift * month), 1.0)
    size = min(size, len(pool))
    chosen = rng.choice(len(pool), size=size, replace=False, p=weight / weight.sum())
    return pool.iloc[chosen]


def score_through_api(settings: Any, applicants: pd.DataFrame) -> list[str]:
    """POST the applicants one by one to the service (in-process FastAPI app), as they arrive;
    return their request ids."""
    from fastapi.testclient import TestClient

    from credit_risk.api import create_app
    from credit_risk.schema import CATEGORICAL, FEATURE_NAMES
    from credit_risk.scoring import Scorer

    body = [
        {
            name: (str(row[name]) if name in CATEGORICAL else int(row[name]))
            for name in FEATURE_NAMES
        }
        for _, row in applicants.iterrows()
    ]
    app = create_app(settings, scorer=Scorer.from_folder(settings.model_dir))
    ids = []
    with TestClient(app) as client:
        for applicant in body:
            response = client.post("/predict", json=applicant)
            response.raise_for_status()
            ids.append(response.json()["request_id"])
    return ids


def import_outcomes(settings: Any, ids: list[str], is_bad: np.ndarray, folder: Path) -> int:
    """Write the outcomes CSV and record it with ``credit-risk outcomes import``."""
    path = folder / f"outcomes-{len(list(folder.glob('outcomes-*.csv')))}.csv"
    observed = datetime.now(UTC).isoformat(timespec="seconds")
    pd.DataFrame(
        {
            "request_id": ids,
            "outcome": np.where(np.asarray(is_bad) == 1, "bad", "good"),
            "observed_at": observed,
        }
    ).to_csv(path, index=False)
    command = Path(sys.executable).with_name("credit-risk")
    args = [str(command)] if command.exists() else [sys.executable, "-m", "credit_risk.cli"]
    env = {**os.environ, "CREDIT_RISK_DECISION_LOG_URL": settings.decision_log_url}
    done = subprocess.run(
        [*args, "outcomes", "import", str(path)], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"outcomes import failed: {done.stderr.strip()}")
    return len(ids)


def run_lifecycle(
    workdir: Path,
    months: int = 4,
    per_month: int = 80,
    base_rows: int = 500,
    shift: float = 0.7,
    seed: int = 42,
    **overrides: Any,
) -> list[MonthReport]:
    """Run the loop; ``overrides`` are Settings fields (trees, trials, gate settings...)."""
    from credit_risk.config import Family, get_settings
    from credit_risk.flows import monitor_flow
    from credit_risk.registry import read_metadata
    from credit_risk.train import train

    workdir.mkdir(parents=True, exist_ok=True)
    base, pool = split_population(base_rows, seed)
    settings = get_settings(
        family=Family.FOREST,  # measured on the forest (the default family is the scorecard)
        data_path=write_uci_csv(base, workdir / "base.csv"),
        tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}",
        artifact_location=str(workdir / "mlruns"),
        model_dir=workdir / "models" / "champion",
        decision_log_url=f"sqlite:///{workdir / 'decisions.db'}",
        monitor_report=workdir / "monitor.html",
        train_with_outcomes=True,
        seed=seed,
        **overrides,
    )
    train(settings)  # the first champion: the base file only (no outcomes exist yet)
    rng = np.random.default_rng(seed)
    reports: list[MonthReport] = []
    waiting: tuple[list[str], np.ndarray] | None = None  # last month's decisions, no outcome yet
    for month in range(1, months + 1):
        started = time.perf_counter()
        arrivals = draw_month(pool, per_month, month, shift, rng)
        pool = pool.drop(index=arrivals.index)
        month_start = datetime.now(UTC).isoformat()
        ids = score_through_api(settings, arrivals)
        imported = 0
        if waiting is not None:
            imported = import_outcomes(settings, *waiting, workdir)
        waiting = (ids, arrivals["is_bad"].to_numpy())
        result = monitor_flow(settings, since=month_start)
        retrained = result.get("retrained")
        if retrained:
            retrained["data_rows"] = _rows_of(settings, retrained["run_id"])
        report = MonthReport(
            month=month,
            arrived=len(arrivals),
            shifted_share=float(in_shifted_group(arrivals).mean()),
            outcomes_imported=imported,
            drift=bool(result["drift"]),
            drift_reasons=list(result.get("reasons", [])),
            retrain_skipped=result.get("retrain_skipped"),
            retrained=retrained,
            champion_version=str(read_metadata(settings.model_dir)["model_version"]),
            seconds=time.perf_counter() - started,
        )
        reports.append(report)
        print("\n".join(report.lines()), flush=True)
    return reports


def _rows_of(settings: Any, run_id: str) -> str:
    """What a run read and trained on, from its dataset fingerprint."""
    from mlflow.tracking import MlflowClient

    from credit_risk.fingerprint import load_fingerprint

    stored = load_fingerprint(MlflowClient(settings.tracking_uri), run_id)
    if stored is None:
        return "? rows"
    summary = stored.summary
    parts = " + ".join(
        f"{s.rows} {'from ' + Path(s.location).name if s.kind == 'file' else 'labelled decisions'}"
        for s in summary.sources
    )
    return f"{summary.rows} rows ({parts}), trained on {summary.trained_rows}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--months", type=int, default=4)
    parser.add_argument("--per-month", type=int, default=80)
    parser.add_argument("--base-rows", type=int, default=500)
    parser.add_argument("--shift", type=float, default=0.7, help="tilt per month (log weight)")
    parser.add_argument("--trials", type=int, default=5, help="Optuna trials per retrain")
    parser.add_argument("--n-estimators", type=int, default=200)
    parser.add_argument("--gate-min-rows", type=int, default=40)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lifecycle-"))
    # A Prefect home of its own: the temporary server's database is not shared with other runs.
    os.environ.setdefault("PREFECT_HOME", str(workdir / "prefect"))
    print(
        f"life cycle: {args.base_rows} base rows, {args.months} months of {args.per_month} "
        f"applicants (tilt {args.shift}/month towards {SHIFTED[0]} in {'/'.join(SHIFTED[1])}), "
        f"outcomes one month late, {args.trials} trials of {args.n_estimators} trees per retrain; "
        f"stores in {workdir}",
        flush=True,
    )
    started = time.perf_counter()
    run_lifecycle(
        workdir,
        args.months,
        args.per_month,
        args.base_rows,
        args.shift,
        args.seed,
        trials=args.trials,
        n_estimators=args.n_estimators,
        search_n_estimators=min(args.n_estimators, 200),
        gate_min_rows=args.gate_min_rows,
    )
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
