"""The start-up helpers that tests and benchmarks share."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import time

import pytest

from credit_risk.localserver import free_port, wait_until_ready


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_wait_until_ready_returns_once_the_server_answers() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        wait_until_ready(f"http://127.0.0.1:{server.server_port}/", timeout=10)
    finally:
        server.shutdown()


def test_wait_until_ready_fails_at_once_when_the_process_exits() -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="exited with 3"):
        wait_until_ready(f"http://127.0.0.1:{free_port()}/health", process, timeout=60)
    assert time.monotonic() - started < 5


def test_wait_until_ready_gives_up_after_its_timeout() -> None:
    with pytest.raises(RuntimeError, match="did not answer"):
        wait_until_ready(f"http://127.0.0.1:{free_port()}/health", timeout=0.5)
