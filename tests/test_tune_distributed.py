"""Distributed tuning: worker processes share one Optuna study in PostgreSQL.

A worker killed mid-trial leaves a trial that stops sending heartbeats; the next trial any
worker starts marks it FAIL and Optuna's retry callback enqueues it again, so the study
still reaches the requested number of finished trials and nothing stays RUNNING.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from credit_risk.model import DEFAULT_TRIAL
from credit_risk.train import train
from credit_risk.tune import (
    RetryStaleTrial,
    create_storage,
    database_url,
    finished_trials,
    load_study,
)
from tests.conftest import make_settings

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("postgres-tuning")]

SERVER = "postgresql://postgres@127.0.0.1:5432"
CLI = str(Path(sys.executable).with_name("credit-risk"))
GRACE_SECONDS = 5


@pytest.fixture(scope="session")
def database() -> Iterator[str]:
    """A throw-away database on the machine's PostgreSQL (dropped afterwards).

    Session-scoped so that xdist interleaving modules does not recreate it.
    """
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"credit_risk_tune_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(f"{SERVER}/postgres", connect_timeout=5)
    except psycopg2.OperationalError as error:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {error}")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _worker(storage: str, study: str, trials: int, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [
            CLI,
            "tune",
            "--storage",
            storage,
            "--study-name",
            study,
            "--trials",
            str(trials),
            "--n-jobs",
            "1",
            "--quiet",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _running(storage: str, study: str) -> int:
    """Trials running with all their parameters suggested (so a kill lands in the CV).

    A trial is RUNNING from its creation, before suggest_params has stored its parameters:
    killed then, its failed record lacks the later ones and its retry cannot match them.
    """
    try:
        loaded = optuna.load_study(study_name=study, storage=database_url(storage))
    except KeyError:  # not created yet
        return 0
    running = loaded.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return sum(set(trial.params) >= set(DEFAULT_TRIAL) for trial in running)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_killed_worker_trial_is_retried_and_study_completes(database: str, tmp_path: Path) -> None:
    study_name = f"kill-{uuid.uuid4().hex[:8]}"
    trials = 4
    env = {
        **os.environ,
        "CREDIT_RISK_CV_FOLDS": "2",
        "CREDIT_RISK_HEARTBEAT_SECONDS": "1",
        "CREDIT_RISK_HEARTBEAT_GRACE_SECONDS": str(GRACE_SECONDS),
        "MLFLOW_TRACKING_URI": "unused",
    }
    # Create the study (and its tables) once, so the two workers do not race to create them.
    settings = make_settings(
        tmp_path, storage=database, study_name=study_name, trials=trials, cv_folds=2, n_jobs=1
    )
    from credit_risk.tune import create_study

    create_study(settings)
    victim = _worker(database, study_name, trials, env)
    survivor = _worker(database, study_name, trials, env)
    try:
        deadline = time.monotonic() + 120
        while _running(database, study_name) < 2:  # both workers are mid-CV
            assert victim.poll() is None, victim.stdout.read() if victim.stdout else ""
            assert time.monotonic() < deadline, "workers never ran two trials at once"
            time.sleep(0.2)
        # Freeze the survivor until the victim's trial is stale, so that the survivor's next
        # trial start (which checks heartbeats) is sure to find it, however fast trials run.
        os.killpg(survivor.pid, signal.SIGSTOP)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(10)
        assert finished_trials(load_study(settings)) <= trials - 2
        time.sleep(GRACE_SECONDS + 1.5)
        os.killpg(survivor.pid, signal.SIGCONT)
        output, _ = survivor.communicate(timeout=300)
    finally:
        for process in (victim, survivor):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    assert survivor.returncode == 0, output

    study = optuna.load_study(study_name=study_name, storage=database_url(database))
    states = [trial.state for trial in study.get_trials(deepcopy=False)]
    assert TrialState.RUNNING not in states
    # The workers stop together; two trials finishing at the same moment may add one extra.
    assert trials <= finished_trials(study) <= trials + 1
    failed = [t for t in study.trials if t.state is TrialState.FAIL]
    assert len(failed) == 1
    retried = [
        t for t in study.trials if RetryStaleTrial.retried_trial_number(t) == failed[0].number
    ]
    assert len(retried) == 1 and retried[0].state is TrialState.COMPLETE
    assert retried[0].params == failed[0].params

    # The best parameters feed the training run: `train --trials 0` reuses the study's best.
    run_settings = make_settings(
        tmp_path, storage=database, study_name=study_name, trials=0, cv_folds=2, n_jobs=1
    )
    result = train(run_settings)
    # The tree count is not searched: the fit uses the settings' own.
    assert result.params == {"n_estimators": run_settings.n_estimators, **study.best_params}
    assert result.version == "1"


def test_storage_has_heartbeats_and_retry_callback(database: str, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        storage=database,
        study_name="unused",
        heartbeat_seconds=7,
        heartbeat_grace_seconds=21,
        trial_max_retry=2,
    )
    storage = create_storage(settings)
    assert isinstance(storage, optuna.storages.RDBStorage)
    assert storage.heartbeat_interval == 7 and storage.grace_period == 21
    callback = storage.get_heartbeat_stale_trial_callback()
    assert isinstance(callback, RetryStaleTrial)
    assert callback._max_retry == 2


def test_trials_zero_without_a_stored_study_is_an_error(database: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, storage=database, study_name="does-not-exist")
    with pytest.raises(KeyError):
        load_study(settings)


def test_cli_worker_reports_the_shared_study(database: str, tmp_path: Path) -> None:
    study_name = f"cli-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "CREDIT_RISK_CV_FOLDS": "2"}
    command = [
        CLI,
        "tune",
        "--storage",
        database,
        "--study-name",
        study_name,
        "--trials",
        "1",
        "--n-jobs",
        "1",
        "--quiet",
    ]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert f"study {study_name}: 1 finished trials" in first.stdout
    # Re-running with the same target is a no-op: the study already has its trials.
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert (
        len(load_study(make_settings(tmp_path, storage=database, study_name=study_name)).trials)
        == 1
    )
