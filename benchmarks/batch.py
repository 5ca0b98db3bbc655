"""Batch scoring: ``credit-risk predict`` vs ``mlflow models predict`` (``make bench-batch``).

Both score the same file of applicants (the 1000 German Credit rows repeated to ``--rows``) with
the same registered model. ``credit-risk predict`` streams in chunks and writes probabilities,
classes, decisions and four reason columns; ``mlflow models predict`` loads the whole file and
writes the pipeline's ``predict`` output (class labels only). Wall time, CPU time (user + system,
steadier than wall time on a shared machine) and peak resident memory of each command are
measured with ``/usr/bin/time`` (or ``getrusage`` without it).

``credit-risk predict`` runs twice on a copy of the model folder without its fast-path cache and
with an empty numba cache: the first run loads the pipeline with MLflow, compiles, verifies and
caches the fast path and JIT-compiles the batch kernel; the second is the steady state (light
load from the verified cache). Without ``--store``, a 300-tree forest is trained first (see
benchmarks/serving.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving import BIN, REPO, prepare_store


def write_input(path: Path, rows: int) -> None:
    """The shipped data, as a CSV with the schema's column names, repeated to ``rows`` rows."""
    from credit_risk.data import read_applicants

    applicants = read_applicants(REPO / "data" / "raw" / "german.data").features
    body = applicants.to_csv(index=False, header=False)
    lines = body.splitlines(keepends=True)
    with path.open("w") as handle:
        handle.write(",".join(applicants.columns) + "\n")
        written = 0
        while written < rows:
            take = lines[: rows - written]
            handle.writelines(take)
            written += len(take)


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float, float, int]:
    """Run a command; return wall seconds, CPU seconds, peak RSS in MB and its exit code."""
    if shutil.which("time") or Path("/usr/bin/time").exists():
        started = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-v", *command],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        seconds = time.perf_counter() - started
        peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
        cpu = sum(
            float(found.group(1))
            for found in re.finditer(r"(?:User|System) time \(seconds\): ([\d.]+)", done.stderr)
        )
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
        megabytes = int(peak.group(1)) / 1024 if peak else float("nan")
        return seconds, cpu, megabytes, done.returncode
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    code = subprocess.run(command, env=env, stdout=subprocess.DEVNULL).returncode
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu, after.ru_maxrss / 1024, code


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (the machine may be shared)."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", type=Path, help="MLflow store folder to reuse (or create)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()

    store = args.store or Path(tempfile.mkdtemp(prefix="bench-batch-"))
    store.mkdir(parents=True, exist_ok=True)
    model_dir = prepare_store(store)
    meta = json.loads((model_dir / "metadata.json").read_text())
    uri = f"models:/{meta['model_name']}/{meta['model_version']}"
    work = Path(tempfile.mkdtemp(prefix="bench-batch-files-"))
    applicants = work / "applicants.csv"
    write_input(applicants, args.rows)
    # A fresh copy of the model without its fast-path cache, and an empty numba cache: the first
    # run pays for everything a first run after export without a cache would.
    cold_model = work / "model"
    shutil.copytree(model_dir, cold_model, ignore=shutil.ignore_patterns("fastpath"))
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
        "NUMBA_CACHE_DIR": str(work / "numba-cache"),
    }
    predict = [
        str(BIN / "credit-risk"),
        "predict",
        "--model",
        str(cold_model),
        "--input",
        str(applicants),
        "--output",
        str(work / "ours.csv"),
        "--chunk-rows",
        str(args.chunk_rows),
        "--no-progress",
    ]
    first = "credit-risk predict, first run (load pipeline, compile, verify, cache, JIT)"
    runs = {
        first: predict,
        "credit-risk predict (probabilities, decisions, 4 reasons)": predict,
    }
    if not args.skip_mlflow:
        runs["mlflow models predict (class labels)"] = [
            str(BIN / "mlflow"),
            "models",
            "predict",
            "-m",
            uri,
            "-i",
            str(applicants),
            "-t",
            "csv",
            "-o",
            str(work / "mlflow.json"),
            "--env-manager",
            "local",
        ]
    print(f"load average before: {load_average()}", flush=True)
    results = {}
    for name, command in runs.items():
        seconds, cpu, peak, code = measure(command, env)
        results[name] = (seconds, cpu, peak, code)
        status = "" if code == 0 else f"  FAILED (exit {code})"
        print(
            f"  {name:<58} {seconds:7.1f} s  CPU {cpu:6.1f} s  {args.rows / seconds:10.0f} rows/s"
            f"  peak {peak:7.0f} MB{status}",
            flush=True,
        )
    print(f"load average after: {load_average()}")
    with (work / "ours.csv").open() as handle:
        written = sum(1 for _ in handle) - 1
    print(
        f"\nModel {uri} ({meta.get('params', {}).get('n_estimators', '?')} trees), "
        f"{args.rows} rows, {os.cpu_count()} cores; credit-risk predict wrote {written} rows"
    )
    print("\n| command | seconds | CPU seconds | rows/s | peak MB |\n|---|---|---|---|---|")
    for name, (seconds, cpu, peak, code) in results.items():
        flag = "" if code == 0 else " (failed)"
        print(
            f"| {name}{flag} | {seconds:.1f} | {cpu:.1f} | {args.rows / seconds:.0f} | {peak:.0f} |"
        )
    if len(results) == 3:
        _, (ours, ours_cpu, ours_peak, _), (theirs, theirs_cpu, theirs_peak, code) = (
            results.values()
        )
        if code == 0:
            print(
                f"ratio (steady state): credit-risk predict is {theirs / ours:.1f}x faster "
                f"({theirs_cpu / ours_cpu:.1f}x less CPU), {theirs_peak / ours_peak:.1f}x less "
                "peak memory"
            )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
