"""The images, built and run: the full image trains a model into a named volume and serves it,
and the slim serving image serves that model from the same volume, read-only.

The container tests (marker ``container``; deselect with ``-m "not container"``) build with
podman through ``containers/build.sh`` (the base image from Debian packages, then both
targets, with the layer cache) and run through ``containers/podman.sh``, the settings this
machine's container runtime needs (``.ci/run`` builds first, printing build times and image
sizes, and sets ``CREDIT_RISK_IMAGES_BUILT=1`` so the tests reuse those images). Without podman
they are skipped, except in CI (``CI`` set), where ``.ci/run`` installs it and a skip would
hide a missing image.

One test needs no container: the service, with every module outside requirements-serve.txt
made unimportable, still loads the exported model and answers; this is what the slim image
relies on, checked in seconds on every run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from credit_risk.fastpath import FASTPATH_DIR, META_FILE, PARITY_TOLERANCE
from credit_risk.localserver import free_port, wait_until_ready
from tests.api.conftest import APPLICANT
from tests.conftest import REPO
from tests.tiny_training import TINY_TRAINING

PODMAN = REPO / "containers" / "podman.sh"
BUILD = REPO / "containers" / "build.sh"
SERVE_REQUIREMENTS = REPO / "requirements-serve.txt"
FULL = "credit-risk:latest"
SERVE = "credit-risk-serve:latest"
SLIM_LIMIT_BYTES = 400 * 10**6
APP_UID = 10001
container = pytest.mark.container


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def serving_requirements() -> set[str]:
    """Distribution names pinned in requirements-serve.txt, normalised."""
    names = set()
    for line in SERVE_REQUIREMENTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(_normalise(re.split(r"[=<>!~;\[ ]", line)[0]))
    return names


# Run in a fresh interpreter: the service, with an import hook refusing every installed
# distribution that requirements-serve.txt does not name (what the slim image lacks).
_SERVE_WITH_SERVING_REQUIREMENTS_ONLY = """
import importlib.abc, importlib.metadata, json, re, sys, time

from starlette.testclient import TestClient  # the test's own client (httpx), not the service's

allowed = set(json.loads(sys.argv[1])) | {"credit-risk"}
owners = importlib.metadata.packages_distributions()
refused = set()

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

class OnlyServingRequirements(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        dists = owners.get(top)
        if top != "credit_risk" and dists and not any(norm(d) in allowed for d in dists):
            refused.add(top)
            raise ModuleNotFoundError(f"{name} is not in requirements-serve.txt", name=name)
        return None

sys.meta_path.insert(0, OnlyServingRequirements())
from credit_risk.api import create_app
from credit_risk.config import get_settings

settings = get_settings(model_dir=sys.argv[2], decision_log_url=sys.argv[3])
status = {}
with TestClient(create_app(settings)) as client:
    deadline = time.monotonic() + 120
    while client.get("/health").json()["status"] == "loading" and time.monotonic() < deadline:
        time.sleep(0.05)
    health = client.get("/health")
    status["health"] = health.status_code
    status["predict"] = client.post("/predict", json=json.loads(sys.argv[4])).status_code
    status["card"] = client.get("/model/card").status_code
    status["page"] = client.get("/").status_code
    status["metrics"] = client.get("/metrics").status_code
heavy = ("sklearn", "mlflow", "numba", "skops", "scipy", "optuna", "prefect", "fairlearn")
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in heavy)
result = {"status": status, "health": health.json(), "refused": sorted(refused), "loaded": loaded}
print("RESULT " + json.dumps(result))
"""


def _serve_with_serving_requirements_only(model_dir: Path, folder: Path) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _SERVE_WITH_SERVING_REQUIREMENTS_ONLY,
            json.dumps(sorted(serving_requirements())),
            str(model_dir),
            f"sqlite:///{folder / 'decisions.db'}",
            json.dumps(APPLICANT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout + done.stderr
    return dict(json.loads(lines[-1].removeprefix("RESULT ")), stderr=done.stderr)


def test_service_runs_on_the_serving_requirements_alone(model_dir: Path, tmp_path: Path) -> None:
    result = _serve_with_serving_requirements_only(model_dir, tmp_path)
    assert result["status"] == dict.fromkeys(
        ("health", "predict", "card", "page", "metrics"), 200
    ), result["stderr"][-3000:]
    assert result["loaded"] == []
    # The hook did refuse something (numba, at least): it was active, not vacuous.
    assert "numba" in result["refused"], result


def test_without_a_matching_cache_the_serving_requirements_say_why_they_cannot_serve(
    model_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "champion"
    shutil.copytree(model_dir, folder)
    manifest = folder / FASTPATH_DIR / META_FILE
    meta = json.loads(manifest.read_text())
    meta["code"] = "0" * 16  # a cache verified with other code: not trusted
    manifest.write_text(json.dumps(meta))
    result = _serve_with_serving_requirements_only(folder, tmp_path)
    assert result["status"]["health"] == 503 and result["status"]["predict"] == 503
    assert result["health"]["status"] == "failed"
    detail = result["health"]["detail"]
    assert str(folder / FASTPATH_DIR) in detail and "no verified fast-path cache" in detail


def test_serving_requirements_pin_the_full_lock_s_versions() -> None:
    full = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, _, version = line.strip().partition("==")
            full[_normalise(name)] = version
    for line in SERVE_REQUIREMENTS.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, _, version = line.strip().partition("==")
            assert full.get(_normalise(name)) == version, f"{name}=={version} not in requirements"
    assert not serving_requirements() & {"scikit-learn", "mlflow", "numba", "optuna", "prefect"}


# ---- containers --------------------------------------------------------------------------


def podman(*args: str, timeout: float = 600, check: bool = True) -> str:
    done = subprocess.run(
        [str(PODMAN), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    if check and done.returncode != 0:
        pytest.fail(f"podman {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}")
    return done.stdout.strip()


@pytest.fixture(scope="module")
def images() -> None:
    """Both images, built (or found in the layer cache) by containers/build.sh."""
    if shutil.which("podman") is None or shutil.which("mmdebstrap") is None:
        if os.environ.get("CI"):
            pytest.fail("podman or mmdebstrap is missing in CI (.ci/run installs them)")
        pytest.skip("podman and mmdebstrap are not installed (apt-get install podman mmdebstrap)")
    if os.environ.get("CREDIT_RISK_IMAGES_BUILT") == "1":
        # .ci/run ran containers/build.sh on this tree just before (and printed the sizes).
        for tag in (FULL, SERVE):
            podman("image", "exists", tag)
        return
    done = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=3600, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr[-6000:]


@pytest.fixture(scope="module")
def models_volume(images: None) -> Iterator[str]:
    """A named volume holding a model that ``credit-risk train`` exported inside the image."""
    volume = f"credit-risk-test-models-{uuid.uuid4().hex[:8]}"
    podman("volume", "create", volume)
    try:
        environment = [f"--env={key}={value}" for key, value in TINY_TRAINING.items()]
        podman(
            "run", "--rm", *environment, "-v", f"{volume}:/app/models", FULL,
            "credit-risk", "train", "--quiet",
            timeout=1800,
        )  # fmt: skip
        yield volume
    finally:
        podman("volume", "rm", "--force", volume, check=False)


@contextmanager
def serving(image: str, volume: str) -> Iterator[tuple[str, str]]:
    """``uvicorn api:app`` (the image's command) on a free port, the volume read-only."""
    name = f"credit-risk-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    podman(
        "run", "--detach", "--name", name, "-v", f"{volume}:/app/models:ro", image,
        "uvicorn", "api:app", "--host", "127.0.0.1", "--port", str(port),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_ready(f"{url}/health", timeout=300)
        except Exception:
            pytest.fail(f"{image} did not become healthy:\n{podman('logs', name, check=False)}")
        yield url, name
    finally:
        podman("rm", "--force", name, check=False)


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return dict(json.loads(response.read()))


def _health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
        assert response.status == 200
        return dict(json.loads(response.read()))


def _served_uid(name: str) -> int:
    """Owner of the container's first process (uvicorn), read from inside the container."""
    return int(podman("exec", name, "python", "-c", "import os; print(os.stat('/proc/1').st_uid)"))


@pytest.fixture(scope="module")
def full_prediction(models_volume: str) -> dict[str, Any]:
    with serving(FULL, models_volume) as (url, name):
        assert _health(url)["status"] == "ready"
        prediction = _post(f"{url}/predict", APPLICANT)
        assert _served_uid(name) == APP_UID
    return prediction


@container
def test_full_image_trains_into_a_named_volume_as_the_non_root_user(models_volume: str) -> None:
    for image in (FULL, SERVE):
        user, healthcheck = podman(
            "image", "inspect", "--format", "{{.Config.User}}|{{.Config.Healthcheck}}", image
        ).split("|", 1)
        assert user == f"{APP_UID}:{APP_UID}", image
        assert "http://127.0.0.1:8000/health" in healthcheck, image
    owners = podman(
        "run", "--rm", "-v", f"{models_volume}:/app/models:ro", FULL,
        "stat", "-c", "%u %n", "/app/models/champion/metadata.json",
        "/app/models/champion/fastpath/fastpath.json", "/app/models/champion/model/model.skops",
    )  # fmt: skip
    assert [line.split()[0] for line in owners.splitlines()] == [str(APP_UID)] * 3, owners


@container
def test_full_image_serves_the_model_it_trained(full_prediction: dict[str, Any]) -> None:
    assert full_prediction["decision"] in ("approve", "reject")
    assert 0 <= full_prediction["probability_bad"] <= 1
    assert full_prediction["model_version"] == "1"
    assert full_prediction["reasons"], full_prediction


@container
def test_slim_image_is_small_and_has_no_training_stack(images: None) -> None:
    size = int(podman("image", "inspect", "--format", "{{.Size}}", SERVE))
    full = int(podman("image", "inspect", "--format", "{{.Size}}", FULL))
    assert size <= SLIM_LIMIT_BYTES, f"{SERVE} is {size / 1e6:.0f} MB (full: {full / 1e6:.0f} MB)"
    for module in ("sklearn", "mlflow", "numba", "optuna", "prefect"):
        done = subprocess.run(
            [str(PODMAN), "run", "--rm", SERVE, "python", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1 and "ModuleNotFoundError" in done.stderr, module


@container
def test_slim_image_serves_the_full_image_s_model_read_only(
    models_volume: str, full_prediction: dict[str, Any]
) -> None:
    with serving(SERVE, models_volume) as (url, name):
        assert _health(url) == {"status": "ready", "model_version": "1"}
        prediction = _post(f"{url}/predict", APPLICANT)
        assert _served_uid(name) == APP_UID
        with urllib.request.urlopen(f"{url}/model/card", timeout=30) as response:
            assert response.status == 200
    # Same model, same cache: ONNX Runtime here, the numba kernel in the full image.
    assert prediction["decision"] == full_prediction["decision"]
    gap = abs(prediction["probability_bad"] - full_prediction["probability_bad"])
    assert gap <= PARITY_TOLERANCE, gap
    reasons, full_reasons = prediction["reasons"], full_prediction["reasons"]
    assert [r["attribute"] for r in reasons] == [r["attribute"] for r in full_reasons]
    for reason, full_reason in zip(reasons, full_reasons, strict=True):
        assert abs(reason["contribution"] - full_reason["contribution"]) <= PARITY_TOLERANCE
