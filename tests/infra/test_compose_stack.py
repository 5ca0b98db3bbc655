"""The commands docker-compose.yml runs, run here outside any container (no Docker engine).

Each service's ``command`` and ``healthcheck`` are read from docker-compose.yml and run as
written, except for what only exists inside the compose network: host names and ports become
127.0.0.1 and free ports, the PostgreSQL URLs point at throw-away databases on the machine's
PostgreSQL, and container paths become temporary folders. What this does not verify: the
image build itself (``pip install`` in the Dockerfile), the non-root user's file permissions
on the named volumes, and Compose's own start-up ordering.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests
from mlflow.tracking import MlflowClient

from credit_risk.config import Names
from credit_risk.data import read_applicants
from credit_risk.localserver import free_port, wait_until_ready
from tests.conftest import DATA, REPO
from tests.infra.conftest import (
    PG_SERVER,
    interpolate,
    load_compose,
    replace_option,
    stop,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.xdist_group("compose-stack")]
# One test drives the whole stack: with pytest 9, pytest-xdist's `--dist loadgroup` no longer
# keeps a group on one worker, and split tests would start the servers once per worker.

BIN = Path(sys.executable).parent


def _service(name: str) -> dict[str, Any]:
    return load_compose()["services"][name]


def _command(name: str) -> list[str]:
    command = _service(name)["command"]
    return [interpolate(str(part)) for part in command]


def _environment(name: str, hosts: dict[str, str]) -> dict[str, str]:
    """The service's environment, with compose host:port pairs mapped to local ones."""
    env: dict[str, str] = {}
    for key, value in (_service(name).get("environment") or {}).items():
        text = interpolate(str(value))
        for compose_host, local in hosts.items():
            text = text.replace(compose_host, local)
        env[key] = text
    return env


def _start(
    command: list[str], env: dict[str, str], log: Path, cwd: Path = REPO
) -> subprocess.Popen:
    executable = str(BIN / command[0]) if (BIN / command[0]).exists() else command[0]
    return subprocess.Popen(
        [executable, *command[1:]],
        cwd=cwd,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _healthcheck(name: str, port_in_compose: int, port: int) -> list[str]:
    test = _service(name)["healthcheck"]["test"]
    assert test[0] == "CMD"
    return [part.replace(f":{port_in_compose}/", f":{port}/") for part in test[1:]]


@pytest.fixture(scope="session")
def base_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CREDIT_RISK_", "MLFLOW_", "PREFECT_"))
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PREFECT_HOME"] = str(home / "prefect")
    return env


@pytest.fixture(scope="session")
def servers(
    new_database: Callable[[str], str],
    base_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    """The compose ``mlflow`` and ``prefect`` services' commands, both on PostgreSQL.

    Both start at once (their database migrations are most of the wait), as Compose does.
    """
    folder = tmp_path_factory.mktemp("servers")
    mlflow_port, prefect_port = free_port(), free_port()
    command = _command("mlflow")
    command = replace_option(
        command,
        "--backend-store-uri",
        f"postgresql+psycopg2://{PG_SERVER}/{new_database('mlflow')}",
    )
    command = replace_option(command, "--artifacts-destination", str(folder / "artifacts"))
    command = replace_option(command, "--host", "127.0.0.1")
    command = replace_option(command, "--port", str(mlflow_port))
    command = replace_option(command, "--workers", "1")
    mlflow_log = folder / "mlflow.log"
    mlflow_process = _start(command, base_env, mlflow_log)

    command = replace_option(_command("prefect"), "--host", "127.0.0.1")
    command = replace_option(command, "--port", str(prefect_port))
    env = {
        **base_env,
        **_environment("prefect", {"localhost:4200": f"127.0.0.1:{prefect_port}"}),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://{PG_SERVER}/{new_database('prefect')}",
    }
    prefect_log = folder / "prefect.log"
    prefect_process = _start(command, env, prefect_log)
    urls = {
        "mlflow": f"http://127.0.0.1:{mlflow_port}",
        "prefect": f"http://127.0.0.1:{prefect_port}/api",
    }
    try:
        wait_until_ready(f"{urls['mlflow']}/health", mlflow_process, log=mlflow_log)
        wait_until_ready(f"{urls['prefect']}/health", prefect_process, log=prefect_log)
        for name, port_in_compose, port in (
            ("mlflow", 5000, mlflow_port),
            ("prefect", 4200, prefect_port),
        ):
            health = subprocess.run(
                _healthcheck(name, port_in_compose, port), env=base_env, timeout=30
            )
            assert health.returncode == 0, f"{name} healthcheck failed"
        yield urls
    finally:
        stop(mlflow_process)
        stop(prefect_process)


@pytest.fixture(scope="session")
def mlflow_server(servers: dict[str, str]) -> str:
    return servers["mlflow"]


@pytest.fixture(scope="session")
def prefect_server(servers: dict[str, str]) -> str:
    return servers["prefect"]


@pytest.fixture(scope="session")
def trained_stack(
    mlflow_server: str,
    prefect_server: str,
    base_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """The compose ``trainer`` (one-shot ``credit-risk flow run``) against both servers."""
    work = tmp_path_factory.mktemp("trainer")
    (work / "data").symlink_to(REPO / "data")
    hosts = {"http://mlflow:5000": mlflow_server, "http://prefect:4200/api": prefect_server}
    env = {
        **base_env,
        **_environment("trainer", hosts),
        "CREDIT_RISK_MODEL_DIR": str(work / "models" / "champion"),
        # Small search so the test stays short; the command itself is unchanged.
        "CREDIT_RISK_TRIALS": "2",
        "CREDIT_RISK_CV_FOLDS": "2",
        "CREDIT_RISK_N_JOBS": "1",
    }
    assert env["MLFLOW_TRACKING_URI"] == mlflow_server
    assert env["PREFECT_API_URL"] == prefect_server
    command = _command("trainer")
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {"work": work, "env": env, "output": result.stdout}


def _check_trainer_registers_over_http_and_champion_loads_by_alias(
    trained_stack: dict[str, Any], mlflow_server: str
) -> None:
    client = MlflowClient(mlflow_server)
    champion = client.get_model_version_by_alias(
        Names.REGISTERED_MODEL.value, Names.CHAMPION_ALIAS.value
    )
    run = client.get_run(champion.run_id)
    # The server proxies artifacts: clients only ever see mlflow-artifacts: URIs.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert not (trained_stack["work"] / "mlruns").exists()
    mlflow.set_tracking_uri(mlflow_server)
    model = mlflow.sklearn.load_model(
        f"models:/{Names.REGISTERED_MODEL.value}@{Names.CHAMPION_ALIAS.value}"
    )
    probability = model.predict_proba(read_applicants(DATA).features.head(20))[:, 1]
    assert ((probability >= 0) & (probability <= 1)).all()
    assert (trained_stack["work"] / "models" / "champion" / "metadata.json").exists()


def _check_mlflow_server_accepts_the_compose_host_name(mlflow_server: str) -> None:
    # Clients in the compose network send Host: mlflow:5000 (MLflow 3 rejects unknown hosts).
    answer = requests.get(f"{mlflow_server}/health", headers={"Host": "mlflow:5000"}, timeout=5)
    assert answer.status_code == 200


def _check_flow_run_is_recorded_by_the_prefect_server(
    trained_stack: dict[str, Any], prefect_server: str
) -> None:
    answer = requests.post(f"{prefect_server}/flow_runs/filter", json={}, timeout=10)
    answer.raise_for_status()
    runs = answer.json()
    assert [run["state_type"] for run in runs] == ["COMPLETED"]


def _check_api_command_serves_the_champion_and_passes_its_healthcheck(
    trained_stack: dict[str, Any], base_env: dict[str, str]
) -> None:
    pytest.importorskip("credit_risk.api")
    port = free_port()
    command = replace_option(_command("api"), "--host", "127.0.0.1")
    command = replace_option(command, "--port", str(port))
    env = {**trained_stack["env"]}
    log = trained_stack["work"] / "api.log"
    process = _start(command, env, log, cwd=REPO)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/health", process, timeout=120, log=log)
        health = subprocess.run(_healthcheck("api", 8000, port), env=base_env, timeout=30)
        assert health.returncode == 0
    finally:
        stop(process)


def test_compose_services_run_outside_a_container(
    servers: dict[str, str], trained_stack: dict[str, Any], base_env: dict[str, str]
) -> None:
    """mlflow + prefect (on PostgreSQL) -> trainer -> api, each as docker-compose.yml runs it."""
    _check_mlflow_server_accepts_the_compose_host_name(servers["mlflow"])
    _check_trainer_registers_over_http_and_champion_loads_by_alias(trained_stack, servers["mlflow"])
    _check_flow_run_is_recorded_by_the_prefect_server(trained_stack, servers["prefect"])
    _check_api_command_serves_the_champion_and_passes_its_healthcheck(trained_stack, base_env)
