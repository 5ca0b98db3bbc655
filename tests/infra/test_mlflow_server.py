"""MLflow tracking-server mode: PostgreSQL backend store, artifacts proxied by the server.

This is the team set-up the README describes: every component gets
``MLFLOW_TRACKING_URI=http://<server>:5000`` and nothing else; clients never touch the
database or the artifact folder directly.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow.tracking import MlflowClient

from credit_risk.train import train
from tests.conftest import DATA, FAST_PARAMS, make_settings

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SERVER = "postgresql://postgres@127.0.0.1:5432"
MLFLOW = str(Path(sys.executable).with_name("mlflow"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def backend_store() -> Iterator[str]:
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"credit_risk_mlflow_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(f"{SERVER}/postgres", connect_timeout=5)
    except psycopg2.OperationalError as error:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {error}")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        # psycopg2 is the driver we ship; SQLAlchemy 2.1 would pick psycopg 3 for postgresql://.
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module")
def tracking_server(backend_store: str, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[str]:
    """``mlflow server`` on PostgreSQL with a local artifact root, as docker-compose runs it."""
    artifacts = tmp_path_factory.mktemp("mlflow-artifacts")
    port = _free_port()
    log = (artifacts.parent / f"mlflow-server-{port}.log").open("w")
    process = subprocess.Popen(
        [MLFLOW, "server", "--backend-store-uri", backend_store,
         "--artifacts-destination", str(artifacts), "--serve-artifacts",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": ""},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, Path(log.name).read_text()[-3000:]
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def test_train_over_http_and_load_champion_by_alias(tracking_server: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    settings = make_settings(tmp_path, tracking_uri=tracking_server, cv_folds=2)
    result = train(settings, params=FAST_PARAMS)
    assert result.gate.promote

    client = MlflowClient(tracking_server)
    champion = client.get_model_version_by_alias(settings.registered_model_name, "champion")
    assert str(champion.version) == result.version
    run = client.get_run(result.run_id)
    # The server proxies artifacts: the client saw only an mlflow-artifacts: URI, no local path.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert not (tmp_path / "mlruns").exists()

    mlflow.set_tracking_uri(tracking_server)
    model = mlflow.sklearn.load_model(f"models:/{settings.registered_model_name}@champion")
    from credit_risk.data import read_applicants

    probability = model.predict_proba(read_applicants(DATA).features.head(20))[:, 1]
    assert probability.shape == (20,)
    assert ((probability >= 0) & (probability <= 1)).all()
