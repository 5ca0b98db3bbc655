"""The cache of verified fast paths: written at export, reused, refused when stale or edited."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from credit_risk import fastpath
from credit_risk.fastpath import load_or_build
from credit_risk.scoring import Scorer
from tests.conftest import DATA


def test_fast_path_cache_is_written_and_reused(model_dir: Path, tmp_path: Path) -> None:
    from credit_risk.registry import load_exported

    pipeline, metadata = load_exported(model_dir)
    cache = tmp_path / "cache"
    first = load_or_build(pipeline, metadata, cache)
    assert (cache / fastpath.GRAPH_FILE).exists()
    stamp = (cache / fastpath.GRAPH_FILE).stat().st_mtime_ns
    second = load_or_build(pipeline, metadata, cache)
    assert (cache / fastpath.GRAPH_FILE).stat().st_mtime_ns == stamp
    assert second.bias == pytest.approx(first.bias)


def _copy_model(model_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    return folder


def test_load_light_matches_full_load_on_all_rows(
    model_dir: Path, applicants: pd.DataFrame
) -> None:
    from credit_risk.registry import load_exported

    light = Scorer.from_folder(model_dir)
    assert light.fast is not None and light.fast.pipeline is None  # served from the cache
    pipeline, metadata = load_exported(model_dir)
    full = Scorer.from_pipeline(pipeline, metadata, cache_dir=None)
    assert full.fast is not None
    expected = pipeline.predict_proba(applicants)[:, 1]
    for engine in ("onnx", "trees"):
        ours = light.score(applicants, engine=engine)
        pd.testing.assert_frame_equal(ours, full.score(applicants, engine=engine))
        assert np.max(np.abs(ours["probability_bad"] - expected)) <= 1e-9
        assert (
            ours["decision"] == np.where(expected >= light.threshold, "reject", "approve")
        ).all()
    records = applicants.head(50).to_dict("records")
    assert light.score_records(records) == full.score_records(records)
    # The pipeline is still there for whoever asks (read from the folder on first use).
    assert light.pipeline is not None


@pytest.mark.parametrize("tamper", ["trees", "graph", "manifest", "model"])
def test_load_refuses_tampered_or_stale_cache(
    tamper: str, model_dir: Path, tmp_path: Path, applicants: pd.DataFrame
) -> None:
    folder = _copy_model(model_dir, tmp_path)
    cache = folder / fastpath.FASTPATH_DIR
    if tamper == "trees":  # one leaf's targets edited
        saved = dict(np.load(cache / fastpath.TREES_FILE))
        saved["values"][0, 0] += 0.5
        np.savez(cache / fastpath.TREES_FILE, **saved)
    elif tamper == "graph":
        (cache / fastpath.GRAPH_FILE).write_bytes(
            b"\0" + (cache / fastpath.GRAPH_FILE).read_bytes()
        )
    elif tamper == "manifest":  # a cache verified with other code
        meta = json.loads((cache / fastpath.META_FILE).read_text())
        meta["code"] = "0" * 16
        (cache / fastpath.META_FILE).write_text(json.dumps(meta))
    else:  # the folder now holds another model version than the cache was built for
        metadata = json.loads((folder / "metadata.json").read_text())
        metadata["model_version"] = "999"
        (folder / "metadata.json").write_text(json.dumps(metadata))
    assert fastpath.load_cached(cache, json.loads((folder / "metadata.json").read_text())) is None
    scorer = Scorer.from_folder(folder)
    # Fell back to the pipeline: compiled and verified again, and the cache rewritten.
    assert scorer.fast is not None and scorer.fast.pipeline is not None
    expected = scorer.pipeline.predict_proba(applicants)[:, 1]
    assert np.max(np.abs(scorer.score(applicants)["probability_bad"] - expected)) <= 1e-9
    assert Scorer.from_folder(folder).fast.pipeline is None  # type: ignore[union-attr]


def test_load_light_imports_no_mlflow_or_sklearn(model_dir: Path, tmp_path: Path) -> None:
    script = f"""
import sys
from credit_risk.cli import app
app(["predict", "--model", {str(model_dir)!r}, "--input", {str(DATA)!r},
     "--output", {str(tmp_path / "out.csv")!r}, "--no-progress"], standalone_mode=False)
heavy = ("mlflow", "sklearn", "skops", "imblearn")
heavy = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
print("HEAVY", heavy)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr
    assert len(pd.read_csv(tmp_path / "out.csv")) == 1000


def test_export_writes_a_verified_cache(model_dir: Path) -> None:
    meta = json.loads((model_dir / fastpath.FASTPATH_DIR / fastpath.META_FILE).read_text())
    assert meta["verification"]["passed"] is True
    assert meta["verification"]["max_abs_diff_probability"] <= fastpath.PARITY_TOLERANCE
    assert set(meta["files"]) == {fastpath.GRAPH_FILE, fastpath.TREES_FILE}


def test_code_fingerprint_covers_every_module_of_the_compiler_and_the_feature_step() -> None:
    from credit_risk.fastpath import cache

    package = Path(fastpath.__file__).resolve().parent
    hashed = {path.resolve() for path in cache._fingerprinted_sources()}
    assert set(package.glob("*.py")) <= hashed
    source = package.parent
    for module in ("features.py", "derivations.py", "schema.py"):
        assert source / module in hashed
