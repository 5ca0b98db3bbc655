"""Helpers for the container tests: the compose file, free ports, throw-away databases."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
PG_SERVER = "postgres@127.0.0.1:5432"


def load_compose() -> dict[str, Any]:
    """docker-compose.yml with YAML anchors and merge keys resolved."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with the defaults (no .env file in tests)."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: os.environ.get(m[1], m[2]), value)


def replace_option(command: list[str], option: str, value: str) -> list[str]:
    """The same command with the value after ``option`` replaced (host paths, ports, URLs)."""
    index = command.index(option)
    return [*command[: index + 1], value, *command[index + 2 :]]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.fixture(scope="session")
def new_database() -> Iterator[Callable[[str], str]]:
    """Factory of throw-away PostgreSQL databases (``name -> database name``), dropped after."""
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(f"postgresql://{PG_SERVER}/postgres", connect_timeout=5)
    except psycopg2.OperationalError as error:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {error}")
    admin.autocommit = True
    created: list[str] = []

    def create(purpose: str) -> str:
        name = f"credit_risk_{purpose}_{uuid.uuid4().hex[:8]}"
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return name

    try:
        yield create
    finally:
        with admin.cursor() as cursor:
            for name in created:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
