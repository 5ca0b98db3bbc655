"""Orchestration overhead (``make bench-flow``): the Prefect flow vs ``credit-risk train``.

Runs, side by side and alternating, each in a fresh folder with its own SQLite MLflow store
and the same settings (same seed, trials, folds):

- ``credit-risk train``
- ``credit-risk flow run`` with no Prefect server configured (Prefect starts a temporary one)
- ``credit-risk flow run`` against a Prefect server already running (how a deployment runs;
  the server is started once, before timing, with ``prefect server start``)

and prints the wall-clock time of each and the overhead ratios (target: flow <= 1.20x train).
Other processes on the machine add noise: quote ratios from one side-by-side run.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def timed(command: list[str], env: dict[str, str]) -> float:
    """Seconds one command takes in a fresh working folder holding only the shipped data."""
    with tempfile.TemporaryDirectory(prefix="bench-flow-") as folder:
        (Path(folder) / "data").symlink_to(REPO / "data")
        started = time.perf_counter()
        result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"{command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed


def start_prefect_server(env: dict[str, str], home: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env={**env, "PREFECT_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return server, url
        except requests.RequestException:
            time.sleep(0.5)
    server.terminate()
    raise SystemExit("prefect server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trials", type=int, default=None, help="Optuna trials (default: the Settings default)"
    )
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_API_URL"))}
    if args.trials is not None:
        env["CREDIT_RISK_TRIALS"] = str(args.trials)
    with tempfile.TemporaryDirectory(prefix="bench-prefect-home-") as home:
        env["PREFECT_HOME"] = home
        server, url = start_prefect_server(env, Path(home) / "server")
        try:
            commands = {
                "credit-risk train": ([str(BIN / "credit-risk"), "train", "--quiet"], env),
                "flow, temporary server": ([str(BIN / "credit-risk"), "flow", "run"], env),
                "flow, running server": (
                    [str(BIN / "credit-risk"), "flow", "run"],
                    {**env, "PREFECT_API_URL": url},
                ),
            }
            times: dict[str, list[float]] = {label: [] for label in commands}
            for round_number in range(args.rounds):
                for label, (command, command_env) in commands.items():
                    times[label].append(timed(command, command_env))
                    print(
                        f"round {round_number + 1}: {label:<24} {times[label][-1]:7.1f} s",
                        flush=True,
                    )
        finally:
            server.terminate()
            server.wait(30)
    base = statistics.median(times["credit-risk train"])
    print(
        f"\nmedian of {args.rounds} round(s), trials="
        f"{args.trials if args.trials is not None else 'default'}:"
    )
    for label, values in times.items():
        median = statistics.median(values)
        print(f"  {label:<24} {median:7.1f} s   {median / base:5.2f}x train")
    print("target: the flow takes <= 1.20x `credit-risk train`")


if __name__ == "__main__":
    main()
