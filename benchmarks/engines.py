"""The fast path's two engines on a request's few rows, and the batch engine's throughput.

Times ``FastPath.run_encoded`` (the forests and calibration, without encoding or reasons) with
the numba kernel (``trees``) and with ONNX Runtime (``onnx``) on 1, 4 and 16 already encoded
rows: the median of ``--calls`` calls each, in one process, on the 300-tree forest of
benchmarks/serving.py (trained first without ``--store``). Then the batch engine on
``--rows`` rows (the 1000 German Credit rows repeated), best of three, with one thread per
core. The machine is shared: compare figures measured in the same run.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving import REPO, prepare_store
from timing import median_microseconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", type=Path, help="MLflow store folder to reuse (or create)")
    parser.add_argument("--calls", type=int, default=3000, help="calls per request size")
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the batch run")
    args = parser.parse_args()

    from credit_risk.data import read_applicants
    from credit_risk.scoring import Scorer

    store = args.store or Path(tempfile.mkdtemp(prefix="bench-engines-"))
    store.mkdir(parents=True, exist_ok=True)
    model_dir = prepare_store(store)
    # A copy, so that compiling the fast path here never touches the store's own cache.
    work = Path(tempfile.mkdtemp(prefix="bench-engines-model-"))
    folder = work / "model"
    shutil.copytree(model_dir, folder, ignore=shutil.ignore_patterns("fastpath"))
    try:
        Scorer.from_folder(folder)  # compiles, verifies and caches the fast path
        fast = Scorer.from_folder(folder).fast  # the light load, as a server starts
        if fast is None:
            raise SystemExit("the fast path is unavailable for this model")
        applicants = read_applicants(REPO / "data" / "raw" / "german.data").features
        encoded = fast.encoder.encode_frame(applicants)
        print(f"{len(fast.forest.roots)} trees, {len(fast.forest.values)} leaves", flush=True)
        print("\n| engine | rows | median µs per call |\n|---|---|---|")
        for engine in ("trees", "onnx"):
            for rows in (1, 4, 16):
                batch = encoded[:rows]
                fast.run_encoded(batch, engine)  # warm-up (ONNX session, kernel)
                call = functools.partial(fast.run_encoded, batch, engine)
                spent = median_microseconds(call, args.calls)
                print(f"| {engine} | {rows} | {spent:.1f} |", flush=True)
        big = np.tile(encoded, (-(-args.rows // len(encoded)), 1))[: args.rows]
        fast.forest.run(big[:10_000], os.cpu_count() or 1)
        best = min(
            median_microseconds(lambda: fast.forest.run(big, os.cpu_count() or 1), 1)
            for _ in range(3)
        )
        print(
            f"\nbatch engine: {args.rows} rows, {os.cpu_count()} threads, best of 3: "
            f"{args.rows / (best / 1e6):.0f} rows/s"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
