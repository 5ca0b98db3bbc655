"""Training runs sharing one SQLite store take turns where MLflow would make them collide."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from credit_risk.registry import store_lock

# Imports, says it is ready, waits for the go file, then opens (creates, migrates) the store.
OPEN_STORE = """
import sys, time
from pathlib import Path
from credit_risk.registry import configure_mlflow
from tests.conftest import make_settings
folder, ready, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
settings = make_settings(folder)
ready.touch()
while not go.exists():
    time.sleep(0.005)
configure_mlflow(settings)
"""


def test_store_lock_makes_a_second_holder_wait_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    got: list[float] = []

    def second() -> None:
        with store_lock(uri, "register a model version"):
            got.append(time.perf_counter())

    with caplog.at_level(logging.INFO, logger="credit_risk.registry"):
        with store_lock(uri, "create or open the store"):
            waiter = threading.Thread(target=second)
            waiter.start()
            time.sleep(0.3)
            assert got == []  # still waiting while the first holds the lock
            released = time.perf_counter()
        waiter.join(10)
    assert got and got[0] >= released
    assert (tmp_path / "store" / "mlflow.db.lock").is_file()
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "waiting for the store lock held by another run" in m and "register a model version" in m
        for m in messages
    )


def test_store_lock_is_a_no_op_for_a_tracking_server(tmp_path: Path) -> None:
    with store_lock("http://127.0.0.1:5000", "anything"), store_lock("http://x", "nested"):
        pass


@pytest.mark.slow
def test_processes_opening_a_fresh_store_together_all_succeed(tmp_path: Path) -> None:
    # Without the lock, one of two such processes failed in MLflow's schema migration (5 of 5
    # tries): both found the database empty and both created its tables.
    store, go = tmp_path / "store", tmp_path / "go"
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo / "src"), str(repo)])}
    ready = [tmp_path / f"ready-{n}" for n in range(3)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_STORE, str(store), str(flag), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for flag in ready
    ]
    deadline = time.monotonic() + 120
    while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
        assert all(p.poll() is None for p in processes), "a process ended before the start"
        time.sleep(0.05)
    go.touch()  # all at once
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
