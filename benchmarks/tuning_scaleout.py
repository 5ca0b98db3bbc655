"""Scale-out of distributed tuning (``make bench-tuning``): 1 worker vs 2 on PostgreSQL.

Runs a fixed number of trials twice, on one fresh study each, in a throw-away PostgreSQL
database: once with one ``credit-risk tune`` worker pinned to core 0, once with two workers
pinned to cores 0 and 1 (``taskset``), forest ``--n-jobs 1``. Both studies get the same
parameter sets enqueued up front, so both runs evaluate the same trials and the comparison
is of throughput, not of luck in the sampler. Prints wall-clock and CPU times (CPU / wall shows
how many cores the workers really got) and the speed-up. Other processes on the machine add
noise: quote the ratio measured side by side, and the CPU figures with it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna

from credit_risk.config import get_settings
from credit_risk.model import suggest_params
from credit_risk.tune import create_study, finished_trials

CLI = str(Path(sys.executable).with_name("credit-risk"))


def parameter_sets(trials: int, seed: int) -> list[dict]:
    """``trials`` points of the search space, drawn at random (same for both runs)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    sets = []
    for _ in range(trials):
        trial = study.ask()
        sets.append(suggest_params(trial))
        study.tell(trial, 0.0)
    return sets


def run_workers(
    storage: str, study_name: str, trials: int, cores: list[int], env: dict[str, str]
) -> tuple[float, float]:
    """Start one worker per core on the shared study and wait for all.

    Returns:
        Wall-clock seconds, and CPU seconds the workers used (to show contention).
    """
    pin = shutil.which("taskset")
    started = time.perf_counter()
    workers = []
    for core in cores:
        command = [
            CLI,
            "tune",
            "--storage",
            storage,
            "--study-name",
            study_name,
            "--trials",
            str(trials),
            "--n-jobs",
            "1",
            "--quiet",
        ]
        if pin:
            command = [pin, "-c", str(core), *command]
        workers.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL))
    cpu = 0.0
    codes = []
    for worker in workers:
        _, status, usage = os.wait4(worker.pid, 0)
        worker.returncode = os.waitstatus_to_exitcode(status)
        codes.append(worker.returncode)
        cpu += usage.ru_utime + usage.ru_stime
    elapsed = time.perf_counter() - started
    if any(codes):
        raise SystemExit(f"a worker failed: exit codes {codes}")
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    import psycopg2

    database = f"credit_risk_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(f"{args.server}/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{database}"')
    storage = f"{args.server}/{database}"
    env = {
        **os.environ,
        "CREDIT_RISK_CV_FOLDS": str(args.folds),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    try:
        sets = parameter_sets(args.trials, seed=7)
        results: dict[str, list[float]] = {"1": [], "2": []}
        for round_number in range(args.rounds):
            # Alternate the order so drifting load on the machine hits both sides alike.
            order = ([0], [0, 1]) if round_number % 2 == 0 else ([0, 1], [0])
            for cores in order:
                name = f"scaleout-{len(cores)}-{uuid.uuid4().hex[:6]}"
                settings = get_settings(
                    storage=storage, study_name=name, trials=args.trials, cv_folds=args.folds
                )
                study = create_study(settings)
                for params in sets:
                    study.enqueue_trial(params)
                seconds, cpu = run_workers(storage, name, args.trials, cores, env)
                done = finished_trials(optuna.load_study(study_name=name, storage=study._storage))
                results[str(len(cores))].append(seconds)
                print(
                    f"round {round_number + 1}: {len(cores)} worker(s) on core(s) "
                    f"{','.join(map(str, cores))}: {seconds:7.1f} s wall, {cpu:7.1f} s CPU "
                    f"({cpu / seconds:.2f} cores busy), {done} finished trials",
                    flush=True,
                )
        one, two = statistics.median(results["1"]), statistics.median(results["2"])
        print(
            f"median wall time: 1 worker {one:.1f} s, 2 workers {two:.1f} s; speed-up "
            f"{one / two:.2f}x (target >= 1.6x; {args.trials} trials, {args.folds}-fold CV, "
            f"{args.rounds} round(s), {os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.1f})"
        )
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    main()
