"""Static checks of the container files: hadolint, the Compose schema, and their wiring."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import REPO
from tests.infra.conftest import load_compose

DOCKERFILE = REPO / "Dockerfile"
SCHEMA = Path(__file__).with_name("compose-spec.json")
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def _ignored(path: str) -> bool:
    """Whether .dockerignore excludes ``path`` (last matching rule wins, ``!`` re-includes)."""
    ignored = False
    for rule in (REPO / ".dockerignore").read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").removeprefix("**/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes) or any(
            fnmatch.fnmatch(part, pattern) for part in parts
        ):
            ignored = not negate
    return ignored


def test_hadolint_passes_without_any_finding() -> None:
    result = subprocess.run(
        [HADOLINT, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_dockerfile_is_multistage_slim_pinned_non_root_with_healthcheck() -> None:
    instructions = _instructions()
    stages = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(stages) >= 2
    assert all(stage.startswith("python:3.11-slim") for stage in stages)
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert "pip install --no-cache-dir -r requirements.txt" in runs
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    healthcheck = next(args for keyword, args in instructions if keyword == "HEALTHCHECK")
    assert "http://127.0.0.1:8000/health" in healthcheck
    command = json.loads(next(args for keyword, args in reversed(instructions) if keyword == "CMD"))
    assert command[:2] == ["uvicorn", "api:app"]


def _stages() -> dict[str, list[tuple[str, str]]]:
    """The Dockerfile's instructions by stage name (``FROM image AS name``)."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, args in _instructions():
        if keyword == "FROM":
            current = stages.setdefault(args.split()[-1], [])
        current.append((keyword, args))
    return stages


def test_both_targets_serve_as_the_non_root_user_with_a_healthcheck() -> None:
    stages = _stages()
    assert list(stages)[-1] == "runtime"  # the default target: the full image
    for name in ("serve", "runtime"):
        instructions = stages[name]
        users = [args for keyword, args in instructions if keyword == "USER"]
        assert users == ["10001:10001"], name
        assert any(keyword == "HEALTHCHECK" for keyword, _ in instructions), name
        command = next(args for keyword, args in reversed(instructions) if keyword == "CMD")
        assert json.loads(command)[:2] == ["uvicorn", "api:app"], name
        environment = " ".join(args for keyword, args in instructions if keyword == "ENV")
        # The working directory belongs to root: the decision log goes to the state folder.
        assert "CREDIT_RISK_DECISION_LOG_URL=sqlite:////app/state/" in environment, name
    serve_build = " ".join(args for keyword, args in stages["serve-build"] if keyword == "RUN")
    assert "pip install --no-cache-dir -r requirements-serve.txt" in serve_build
    copied = [args for keyword, args in stages["serve"] if keyword == "COPY"]
    assert any("--from=serve-build" in args for args in copied)
    assert not any("--from=build " in args for args in copied)


def test_everything_the_dockerfile_copies_exists_and_is_in_the_build_context() -> None:
    sources = []
    for keyword, args in _instructions():
        if keyword == "COPY" and "--from=" not in args:
            words = [w for w in args.split() if not w.startswith("--")]
            sources += words[:-1]
    assert {
        "requirements.txt",
        "requirements-serve.txt",
        "src",
        "data/raw",
        "api.py",
        "prefect_flow.py",
    } <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), source
        assert not _ignored(source), f"{source} is excluded by .dockerignore"


def test_dockerignore_keeps_local_stores_and_models_out() -> None:
    for path in (
        ".venv",
        "mlruns",
        "mlflow.db",
        "models/champion",
        ".git",
        "tests",
        "data/processed.csv",
        "src/credit_risk/__pycache__",
    ):
        assert _ignored(path), path
    assert not _ignored("data/raw/german.data")


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert schema["title"] == "Compose Specification"
    validator = jsonschema.Draft201909Validator(
        schema, format_checker=jsonschema.Draft201909Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(load_compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_rejects_a_broken_compose_file() -> None:
    # Guards against a schema that accepts anything.
    schema = json.loads(SCHEMA.read_text())
    broken = load_compose()
    broken["services"]["api"]["healthcheck"]["interval"] = ["30s"]
    broken["services"]["api"]["depends_on"]["trainer"]["condition"] = "service_done"
    assert len(list(jsonschema.Draft201909Validator(schema).iter_errors(broken))) >= 2


def test_compose_wires_the_five_services_with_health_checks_and_named_volumes() -> None:
    compose = load_compose()
    services = compose["services"]
    assert {"postgres", "mlflow", "prefect", "trainer", "api"} <= set(services)
    for name in ("postgres", "mlflow", "prefect", "api"):
        assert services[name]["healthcheck"]["test"], name
    assert services["trainer"]["restart"] == "no"
    assert services["trainer"]["command"][:2] == ["credit-risk", "flow"]
    assert services["api"]["depends_on"]["trainer"]["condition"] == (
        "service_completed_successfully"
    )
    for name in ("mlflow", "prefect"):
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "postgresql" in " ".join(services["mlflow"]["command"])
    assert services["prefect"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].startswith(
        "postgresql+asyncpg://"
    )
    declared = set(compose["volumes"])
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} uses undeclared volume {source}"
    assert {"pgdata", "mlartifacts", "models"} <= declared
    for name in ("mlflow", "prefect", "trainer", "api"):
        assert services[name]["image"] == "credit-risk:latest"


@pytest.mark.parametrize("path", ["docker/postgres-init.sql"])
def test_files_mounted_into_containers_exist(path: str) -> None:
    text = (REPO / path).read_text()
    assert {"mlflow", "prefect", "optuna"} <= set(re.findall(r"CREATE DATABASE (\w+);", text))
