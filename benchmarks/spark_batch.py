"""Spark batch scoring on local[2] vs the local command (``make bench-spark``).

The shipped 1000 rows are repeated to ``--rows`` (default 10 million) and written once, in a
temporary folder, as a CSV with the schema's column names and as Parquet. With the same model
(the 300-tree forest of benchmarks/serving.py; its verified fast-path cache and the numba cache
warmed by a 1000-row run first), one run each of:

- ``credit-risk predict`` (the local engine: one process, the batch kernel on every core),
  CSV in, CSV out;
- ``credit-risk predict --engine spark --spark-master local[2]``, CSV in, CSV folder out;
- the same, Parquet in, Parquet out (skip with ``--skip-parquet``);
- a Spark session on local[2] started and stopped, nothing else: the fixed cost included in
  both Spark runs.

Wall time of each whole command (start-up included), rows/s, rows/s per core (2 cores for
local[2]; the local command's kernel uses ``os.cpu_count()`` threads), and CPU seconds of the
command's whole process tree (the JVM and Spark's Python workers included: read from /proc
every 0.2 s, so a process's last 0.2 s before it exits can be missed), with rows per CPU second,
the steadier figure on a shared machine. The outputs are then checked: row counts, and the first
100,000 rows of the Spark CSV against the local CSV (decisions equal, |Δ probability| ≤ 1e-6).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch import load_average, write_input
from serving import BIN, prepare_store

CHECKED_ROWS = 100_000
TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu() -> dict[int, tuple[int, float]]:
    """Every process's parent and CPU seconds (user + system), from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS)
    return found


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Run a command; return wall seconds, CPU seconds of its process tree, exit code."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    seen: dict[int, float] = {}
    while process.poll() is None:
        table = process_cpu()
        tree = {process.pid}
        grew = True
        while grew:
            more = {pid for pid, (parent, _) in table.items() if parent in tree} - tree
            tree |= more
            grew = bool(more)
        for pid in tree & table.keys():
            seen[pid] = max(seen.get(pid, 0.0), table[pid][1])
        time.sleep(0.2)
    return time.perf_counter() - started, sum(seen.values()), process.returncode


def write_parquet(source: Path, target: Path) -> None:
    """The CSV as Parquet (numbers int64, codes text), streamed in Arrow batches."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    reader = pacsv.open_csv(source, read_options=pacsv.ReadOptions(block_size=16 << 20))
    with pq.ParquetWriter(target, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)


def output_rows(folder: Path) -> int:
    """Rows in a Spark output folder (CSV part files with a header each, or Parquet)."""
    import pyarrow.parquet as pq

    parts = sorted(folder.glob("part-*"))
    if folder.suffix == ".csv":
        total = 0
        for part in parts:
            with part.open("rb") as handle:
                blocks = iter(lambda: handle.read(1 << 24), b"")
                total += sum(block.count(b"\n") for block in blocks)
        return total - len(parts)
    return sum(pq.ParquetFile(part).metadata.num_rows for part in parts)


def check_parity(local_csv: Path, spark_csv: Path, rows: int) -> str:
    """Compare the first ``rows`` rows of both outputs (Spark's part files in name order)."""
    import numpy as np
    import pandas as pd

    local = pd.read_csv(local_csv, nrows=rows, keep_default_na=False)
    frames, have = [], 0
    for part in sorted(spark_csv.glob("part-*")):
        frames.append(pd.read_csv(part, nrows=rows - have, keep_default_na=False))
        have += len(frames[-1])
        if have >= rows:
            break
    spark = pd.concat(frames, ignore_index=True)
    gap = float(np.abs(local["probability_bad"] - spark["probability_bad"]).max())
    same = bool((local["decision"] == spark["decision"]).all())
    columns = list(local.columns) == list(spark.columns)
    status = "ok" if gap <= 1e-6 and same and columns else "MISMATCH"
    return (
        f"first {len(spark)} rows: same columns {columns}, decisions equal {same}, "
        f"max |Δ probability| {gap:.1e}: {status}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", type=Path, help="MLflow store folder to reuse (or create)")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--skip-parquet", action="store_true")
    args = parser.parse_args()
    cores = int(args.master[6:-1]) if args.master.startswith("local[") else os.cpu_count() or 1

    store = args.store or Path(tempfile.mkdtemp(prefix="bench-spark-"))
    store.mkdir(parents=True, exist_ok=True)
    model_dir = prepare_store(store)
    meta = json.loads((model_dir / "metadata.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="bench-spark-files-"))
    applicants = work / "applicants.csv"
    print(f"writing {args.rows} rows to {work} ...", flush=True)
    write_input(applicants, args.rows)
    if not args.skip_parquet:
        write_parquet(applicants, work / "applicants.parquet")
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    base = [str(BIN / "credit-risk"), "predict", "--model", str(model_dir), "--no-progress"]
    chunk = ["--chunk-rows", str(args.chunk_rows)]
    spark = ["--engine", "spark", "--spark-master", args.master]
    spark_csv = str(work / "spark.csv")

    # Warm the fast-path and numba caches (shared by the Spark workers: same interpreter).
    warm = work / "warm.csv"
    write_input(warm, 1000)
    measure([*base, "--input", str(warm), "--output", str(work / "warm.out.csv")], env)

    startup = (
        "from pyspark.sql import SparkSession; "
        f"SparkSession.builder.master({args.master!r}).getOrCreate().stop()"
    )
    runs: dict[str, tuple[list[str], int]] = {
        "credit-risk predict (local engine), CSV -> CSV": (
            [*base, *chunk, "--input", str(applicants), "--output", str(work / "local.csv")],
            os.cpu_count() or 1,
        ),
        f"credit-risk predict --engine spark ({args.master}), CSV -> CSV": (
            [*base, *chunk, *spark, "--input", str(applicants), "--output", spark_csv],
            cores,
        ),
    }
    if not args.skip_parquet:
        runs[f"credit-risk predict --engine spark ({args.master}), Parquet -> Parquet"] = (
            [
                *base,
                *chunk,
                *spark,
                "--input",
                str(work / "applicants.parquet"),
                "--output",
                str(work / "spark.parquet"),
            ],
            cores,
        )
    runs[f"Spark session start and stop alone ({args.master})"] = (
        [sys.executable, "-c", startup],
        cores,
    )

    env["PYSPARK_PYTHON"] = sys.executable
    print(f"load average before: {load_average()}", flush=True)
    results = {}
    for name, (command, used) in runs.items():
        seconds, cpu, code = measure(command, env)
        results[name] = (seconds, cpu, used, code)
        status = "" if code == 0 else f"  FAILED (exit {code})"
        print(f"  {name:<68} {seconds:7.1f} s  CPU {cpu:6.1f} s{status}", flush=True)
    print(f"load average after: {load_average()}")

    written = {
        "local": sum(1 for _ in (work / "local.csv").open()) - 1,
        "spark csv": output_rows(work / "spark.csv"),
    }
    if not args.skip_parquet:
        written["spark parquet"] = output_rows(work / "spark.parquet")
    print(
        f"\nModel {meta['model_name']} v{meta['model_version']} "
        f"({meta.get('params', {}).get('n_estimators', '?')} trees), {args.rows} rows, "
        f"{os.cpu_count()} cores on this machine; rows written: "
        + ", ".join(f"{k} {v}" for k, v in written.items())
    )
    print(check_parity(work / "local.csv", work / "spark.csv", min(CHECKED_ROWS, args.rows)))
    print(
        "\n| command | seconds | rows/s | cores | rows/s per core | CPU seconds "
        "| rows per CPU second |\n|---|---|---|---|---|---|---|"
    )
    for name, (seconds, cpu, used, code) in results.items():
        flag = "" if code == 0 else " (failed)"
        if name.startswith("Spark session"):
            print(f"| {name}{flag} | {seconds:.1f} | | {used} | | {cpu:.1f} | |")
            continue
        rate = args.rows / seconds
        print(
            f"| {name}{flag} | {seconds:.1f} | {rate:.0f} | {used} | {rate / used:.0f} "
            f"| {cpu:.1f} | {args.rows / cpu:.0f} |"
        )
    local = results[next(iter(results))]
    for name, (seconds, cpu, used, _) in results.items():
        if "--engine spark" not in name:
            continue
        per_core = (local[0] * local[2]) / (seconds * used)
        print(
            f"ratio to the local command, {name.split(', ')[-1]}: rows/s per core "
            f"{per_core:.2f}, rows/s {local[0] / seconds:.2f}, rows per CPU second "
            f"{local[1] / cpu:.2f}"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
