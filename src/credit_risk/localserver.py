"""Start-up helpers for a local HTTP server: a free loopback port, and a wait until it answers.

Used by the tests and benchmarks that start the real service (or MLflow, or a container) in a
subprocess, so that each of them does not carry its own copy.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def serve_command(
    model_dir: Path, port: int, workers: int = 1, bin_dir: Path | None = None
) -> list[str]:
    """The ``credit-risk serve`` command line for ``model_dir`` on 127.0.0.1:``port``.

    ``bin_dir`` holds the ``credit-risk`` script (default: next to this Python).
    """
    script = (bin_dir or Path(sys.executable).parent) / "credit-risk"
    return [
        str(script),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--model",
        str(model_dir),
    ]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on at the time of the call."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_until_ready(
    url: str,
    process: subprocess.Popen | None = None,
    timeout: float = 180.0,
    log: Path | None = None,
    interval: float = 0.3,
) -> None:
    """Return once GET ``url`` answers 200.

    Args:
        url: the address to poll (a health route, usually).
        process: the server's process; if it exits first, fail at once instead of waiting.
        timeout: seconds before giving up.
        log: the server's log file, whose tail goes into the error message.
        interval: seconds between polls.

    Raises:
        RuntimeError: the process exited, or ``url`` did not answer 200 within ``timeout``.
    """

    def tail() -> str:
        if log is None or not log.exists():
            return ""
        return "\n" + log.read_text(errors="replace")[-4000:]

    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before {url}{tail()}")
        if _answers(url):
            return
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s{tail()}")
        time.sleep(interval)
