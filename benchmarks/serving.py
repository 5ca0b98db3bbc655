"""Serving throughput and latency: this API vs ``mlflow models serve`` (``make bench-serving``).

Both servers serve the same registered model side by side on 127.0.0.1 and are driven by the
same load generator (wrk when installed, else an asyncio httpx client) at 1 and 16 concurrent
connections. Ours answers with reasons and writes every decision to its (SQLite) decision log.

Without ``--store``, a 300-tree forest is trained first into a temporary MLflow store (fixed
hyperparameters, no search), so both servers load exactly the same registered version.
The machine is shared and noisy: read the ratio, measured back to back, more than the absolutes.

``--baseline-src DIR`` also serves the same model folder with another checkout's ``src`` (for
instance the commit before a change, from ``git archive``), in the same run, so that a change's
cost is read as a before/after ratio; ``--no-mlflow`` leaves ``mlflow models serve`` out. The
applicant scored is rejected by the benchmark model (its reasons are computed every time);
``--applicant approved`` scores one the model approves instead.

``--challenger`` also serves the same champion with a shadow challenger (``credit_risk.api.shadow``)
in the same run, so that the shadow's cost is read as a ratio (p99 with / without). The
challenger is the real thing: a second training run of the same recipe, which ties with the
champion, so the gate keeps the champion and the run takes the challenger alias and is exported
beside it (a forest exactly as costly to score as the champion). The server without it runs
with ``CREDIT_RISK_SHADOW=false``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from credit_risk.localserver import free_port, serve_command, wait_until_ready

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BENCH_PARAMS = {"n_estimators": 300, "max_depth": 12, "min_samples_leaf": 2, "max_features": 0.4}
APPLICANT: dict[str, Any] = {
    "checking_account_status": "A11",
    "duration_months": 24,
    "credit_history": "A32",
    "purpose": "A43",
    "credit_amount": 3500,
    "savings_account": "A61",
    "employment_since": "A73",
    "installment_rate": 4,
    "personal_status_sex": "A93",
    "other_debtors": "A101",
    "residence_since": 2,
    "property": "A123",
    "age_years": 31,
    "other_installment_plans": "A143",
    "housing": "A152",
    "existing_credits": 1,
    "job": "A173",
    "people_liable": 1,
    "telephone": "A191",
    "foreign_worker": "A201",
}


# Approved by the benchmark model: no reasons to compute.
APPROVED: dict[str, Any] = {
    **APPLICANT,
    "checking_account_status": "A14",
    "duration_months": 6,
    "credit_amount": 1200,
    "credit_history": "A34",
    "savings_account": "A65",
    "property": "A121",
    "employment_since": "A75",
}


@dataclass
class Result:
    server: str
    connections: int
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    # The server's CPU time (all its processes) per request: steadier than latency on a
    # shared machine, where other processes' load moves the tail (NaN off Linux).
    cpu_ms: float = math.nan


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants, from /proc (NaN elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    parents: dict[int, tuple[int, float]] = {}
    try:
        entries = [e for e in Path("/proc").iterdir() if e.name.isdigit()]
    except OSError:
        return math.nan
    for entry in entries:
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        parents[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    if pid not in parents:
        return math.nan
    family = {pid}
    grew = True
    while grew:
        children = {child for child, (parent, _) in parents.items() if parent in family}
        grew = not children <= family
        family |= children
    return sum(parents[member][1] for member in family)


def prepare_store(store: Path) -> Path:
    """Train the benchmark forest into ``store`` unless a champion is already exported there."""
    sys.path.insert(0, str(REPO))
    from credit_risk.config import Family, get_settings

    settings = get_settings(
        family=Family.FOREST,  # measured on the forest (the default family is the scorecard)
        tracking_uri=f"sqlite:///{store / 'mlflow.db'}",
        artifact_location=str(store / "mlruns"),
        model_dir=store / "models" / "champion",
        trials=0,
    )
    if not (settings.model_dir / "metadata.json").exists():
        from credit_risk.train import train

        print(f"training a {BENCH_PARAMS['n_estimators']}-tree forest into {store} ...", flush=True)
        train(settings, params=dict(BENCH_PARAMS))
    return settings.model_dir


def prepare_challenger(store: Path) -> Path:
    """Train the challenger into ``store`` (the champion's recipe again: the gate keeps the
    champion and exports the new version beside it) unless it is already there."""
    from credit_risk.config import Family, challenger_folder, get_settings

    settings = get_settings(
        family=Family.FOREST,
        tracking_uri=f"sqlite:///{store / 'mlflow.db'}",
        artifact_location=str(store / "mlruns"),
        model_dir=store / "models" / "champion",
        trials=0,
    )
    folder = challenger_folder(settings)
    if not (folder / "metadata.json").exists():
        from credit_risk.train import train

        print("training the challenger (the champion's recipe again) ...", flush=True)
        result = train(settings, params=dict(BENCH_PARAMS))
        if result.gate.promote:
            raise SystemExit(f"the gate promoted the challenger: {result.gate.reason}")
    return folder


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


Measured = tuple[int, int, float, float, float]  # requests, errors, req/s, p50 ms, p99 ms


def run_wrk(url: str, body: dict[str, Any], connections: int, seconds: int) -> Measured:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(json.dumps(body))}\n"
        )
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            script.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return requests, errors, rps, p50, p99


async def _async_load(url: str, body: dict[str, Any], connections: int, seconds: int) -> Measured:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            started = time.perf_counter()
            response = await client.post(url, json=body)
            latencies.append(time.perf_counter() - started)
            errors += response.status_code != 200

    started = time.perf_counter()
    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=connections), timeout=30
    ) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: 1e3 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    return len(latencies), errors, len(latencies) / elapsed, pick(0.50), pick(0.99)


def load(url: str, body: dict[str, Any], connections: int, seconds: int) -> Measured:
    if shutil.which("wrk"):
        return run_wrk(url, body, connections, seconds)
    return asyncio.run(_async_load(url, body, connections, seconds))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", type=Path, help="MLflow store folder to reuse (or create)")
    parser.add_argument("--seconds", type=int, default=10, help="per measurement")
    parser.add_argument("--connections", default="1,16")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes of each server (1 = mlflow models serve's default)",
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also serve the model with this src folder (e.g. the previous commit's)",
    )
    parser.add_argument("--no-mlflow", action="store_true", help="leave mlflow models serve out")
    parser.add_argument(
        "--challenger",
        action="store_true",
        help="also serve the champion with a shadow challenger (ratio of p99 with / without)",
    )
    parser.add_argument("--applicant", choices=("rejected", "approved"), default="rejected")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every cell this many times, alternating the servers' order; report "
        "the median of each figure (steadier on a shared machine)",
    )
    args = parser.parse_args()
    applicant = APPLICANT if args.applicant == "rejected" else APPROVED

    store = args.store or Path(tempfile.mkdtemp(prefix="bench-serving-"))
    store.mkdir(parents=True, exist_ok=True)
    model_dir = prepare_store(store)
    challenger_dir = prepare_challenger(store) if args.challenger else None
    tracking = f"sqlite:///{store / 'mlflow.db'}"
    meta = json.loads((model_dir / "metadata.json").read_text())
    uri = f"models:/{meta['model_name']}/{meta['model_version']}"
    log_db = store / "bench-decisions.db"
    log_db.unlink(missing_ok=True)

    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": tracking,
        "CREDIT_RISK_DECISION_LOG_URL": f"sqlite:///{log_db}",
        # The other servers score no challenger, even with one exported beside the champion.
        "CREDIT_RISK_SHADOW": "false",
    }

    def serve_ours(folder: Path, extra_env: dict[str, str]) -> tuple[int, subprocess.Popen[bytes]]:
        port = free_port()
        process = subprocess.Popen(
            serve_command(folder, port, args.workers, BIN),
            cwd=store,
            env={**env, **extra_env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return port, process

    processes = []
    targets: dict[str, tuple[str, dict[str, Any], str, subprocess.Popen[bytes]]] = {}
    ours_port, ours = serve_ours(model_dir, {})
    processes.append(ours)
    targets["this API (/predict, reasons + decision log)"] = (
        f"http://127.0.0.1:{ours_port}/predict",
        applicant,
        f"http://127.0.0.1:{ours_port}/health",
        ours,
    )
    shadow_db = store / "bench-decisions-shadow.db"
    shadow_name = "this API + shadow challenger"
    if challenger_dir is not None:
        shadow_db.unlink(missing_ok=True)
        port, process = serve_ours(
            model_dir,
            {
                "CREDIT_RISK_SHADOW": "true",
                "CREDIT_RISK_CHALLENGER_DIR": str(challenger_dir),
                "CREDIT_RISK_DECISION_LOG_URL": f"sqlite:///{shadow_db}",
            },
        )
        processes.append(process)
        targets[shadow_name] = (
            f"http://127.0.0.1:{port}/predict",
            applicant,
            f"http://127.0.0.1:{port}/health",
            process,
        )
        shadow_port = port
    if args.baseline_src:
        # A copy of the folder: the other code may rebuild the fast-path cache in it.
        baseline_dir = store / "baseline-model"
        shutil.rmtree(baseline_dir, ignore_errors=True)
        shutil.copytree(model_dir, baseline_dir)
        baseline_db = store / "bench-decisions-baseline.db"
        baseline_db.unlink(missing_ok=True)
        port, process = serve_ours(
            baseline_dir,
            {
                "PYTHONPATH": str(args.baseline_src.resolve()),
                "CREDIT_RISK_DECISION_LOG_URL": f"sqlite:///{baseline_db}",
            },
        )
        processes.append(process)
        targets[f"baseline ({args.baseline_src}, same model)"] = (
            f"http://127.0.0.1:{port}/predict",
            applicant,
            f"http://127.0.0.1:{port}/health",
            process,
        )
    if not args.no_mlflow:
        mlflow_port = free_port()
        reference = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                uri,
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(mlflow_port),
                "-w",
                str(args.workers),
            ],
            cwd=store,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(reference)
        targets["mlflow models serve (/invocations)"] = (
            f"http://127.0.0.1:{mlflow_port}/invocations",
            {"dataframe_records": [applicant]},
            f"http://127.0.0.1:{mlflow_port}/ping",
            reference,
        )
    results: list[Result] = []
    try:
        for _, (_, _, ready, process) in targets.items():
            wait_until_ready(ready, process)
        if challenger_dir is not None:
            deadline = time.monotonic() + 180
            while (served := httpx.get(f"http://127.0.0.1:{shadow_port}/admin/models").json())[
                "challenger"
            ] is None:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the challenger did not load: {served}")
                time.sleep(0.2)
            print(
                f"shadow server: champion v{served['champion']}, "
                f"challenger v{served['challenger']}",
                flush=True,
            )
        first = httpx.post(f"http://127.0.0.1:{ours_port}/predict", json=applicant).json()
        print(
            f"benchmark applicant: {first['decision']}, {len(first['reasons'])} reasons",
            flush=True,
        )
        measured: list[Result] = []
        for round_number in range(args.rounds):
            order = list(targets.items())
            if round_number % 2:
                order.reverse()
            for connections in [int(c) for c in args.connections.split(",")]:
                for name, (url, body, _, process) in order:
                    load(url, body, connections, 2)  # warm-up
                    cpu = server_cpu_seconds(process.pid)
                    requests, errors, rps, p50, p99 = load(url, body, connections, args.seconds)
                    cpu_ms = 1e3 * (server_cpu_seconds(process.pid) - cpu) / max(requests, 1)
                    measured.append(
                        Result(name, connections, requests, errors, rps, p50, p99, cpu_ms)
                    )
                    print(
                        f"  {name:<45} c={connections:<3} {rps:9.1f} req/s  p50 {p50:8.2f} ms  "
                        f"p99 {p99:8.2f} ms  CPU {cpu_ms:.3f} ms/req  errors {errors}",
                        flush=True,
                    )
        for connections in [int(c) for c in args.connections.split(",")]:
            for name in targets:
                cell = [r for r in measured if r.server == name and r.connections == connections]
                results.append(
                    Result(
                        name,
                        connections,
                        sum(r.requests for r in cell),
                        sum(r.errors for r in cell),
                        float(statistics.median(r.rps for r in cell)),
                        float(statistics.median(r.p50_ms for r in cell)),
                        float(statistics.median(r.p99_ms for r in cell)),
                        float(statistics.median(r.cpu_ms for r in cell)),
                    )
                )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()

    from credit_risk.decision_log import count_rows, make_engine

    logged = count_rows(make_engine(f"sqlite:///{log_db}"))
    shadow_counts = None
    if challenger_dir is not None:
        import sqlalchemy as sa

        from credit_risk.decision_log import shadow_table

        engine = make_engine(f"sqlite:///{shadow_db}")
        with engine.connect() as connection:
            shadowed = connection.execute(
                sa.select(sa.func.count()).select_from(shadow_table)
            ).scalar_one()
        shadow_counts = (count_rows(engine), int(shadowed))
        engine.dispose()
    print(
        f"\nModel {uri} ({meta.get('params', {}).get('n_estimators', '?')} trees), "
        f"{args.workers} workers each, {os.cpu_count()} cores, "
        f"{'wrk' if shutil.which('wrk') else 'httpx'} load, {args.seconds} s per cell, "
        f"median of {args.rounds} round(s); "
        f"decision log rows written by this API: {logged}"
    )
    if shadow_counts is not None:
        decided, shadowed = shadow_counts
        print(
            f"shadow server: {decided} decisions logged, {shadowed} with the challenger's "
            f"shadow decision ({shadowed / max(decided, 1):.1%})"
        )
    print(
        "\n| connections | server | req/s | p50 ms | p99 ms | server CPU ms/request |\n"
        "|---|---|---|---|---|---|"
    )
    for r in results:
        print(
            f"| {r.connections} | {r.server} | {r.rps:.1f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
            f"| {r.cpu_ms:.3f} |"
        )
    for connections in sorted({r.connections for r in results}):
        ours_result, *others = [r for r in results if r.connections == connections]
        shadow = next((r for r in others if r.server == shadow_name), None)
        if shadow is not None:
            others.remove(shadow)
            print(
                f"at {connections} connection(s), shadow challenger on / off: "
                f"p99 {shadow.p99_ms:.2f} / {ours_result.p99_ms:.2f} ms = "
                f"{shadow.p99_ms / max(ours_result.p99_ms, 1e-9):.2f}x, "
                f"p50 {shadow.p50_ms / max(ours_result.p50_ms, 1e-9):.2f}x, "
                f"throughput {shadow.rps / max(ours_result.rps, 1e-9):.2f}x, "
                f"server CPU per request {shadow.cpu_ms / max(ours_result.cpu_ms, 1e-9):.2f}x"
            )
        for other in others:
            if other.rps > 0:
                print(
                    f"at {connections} connection(s), this API vs {other.server}: "
                    f"{ours_result.rps / other.rps:.2f}x throughput, "
                    f"p50 {ours_result.p50_ms:.2f} / {other.p50_ms:.2f} ms = "
                    f"{ours_result.p50_ms / max(other.p50_ms, 1e-9):.2f}x"
                )


if __name__ == "__main__":
    main()
