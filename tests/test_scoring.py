"""The scoring core: compiled fast path parity, reasons, batch file scoring, registry loading."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from credit_risk import fastpath
from credit_risk.data import read_applicants
from credit_risk.fastpath import (
    FastPathUnavailable,
    attribute_lineage,
    components,
    load_or_build,
    read_layout,
    reference_contributions,
)
from credit_risk.schema import ATTRIBUTES, FEATURE_NAMES
from credit_risk.scoring import REASON_COLUMNS, Scorer, predict_file, top_reasons
from tests.conftest import DATA


@pytest.fixture(scope="module")
def applicants() -> pd.DataFrame:
    return read_applicants(DATA).features


@pytest.fixture(scope="module")
def scorer(model_dir: Path) -> Scorer:
    return Scorer.from_folder(model_dir)


def test_fast_path_matches_pipeline_on_all_rows(scorer: Scorer, applicants: pd.DataFrame) -> None:
    assert scorer.fast is not None
    expected = scorer.pipeline.predict_proba(applicants)[:, 1]
    probability, _ = scorer.fast.run_frame(applicants)
    assert np.max(np.abs(probability - expected)) <= 1e-5
    assert np.array_equal(probability >= scorer.threshold, expected >= scorer.threshold)


def test_fast_path_per_request_matches_pipeline_on_all_rows(
    scorer: Scorer, applicants: pd.DataFrame
) -> None:
    assert scorer.fast is not None
    assert scorer.fast.small_engine == "trees"  # numba is a dependency: requests use the kernel
    expected = scorer.pipeline.predict_proba(applicants)[:, 1]
    records = applicants.to_dict("records")
    one_by_one = np.array([scorer.fast.run_records([r])[0][0] for r in records])
    assert np.max(np.abs(one_by_one - expected)) <= 1e-5
    decisions = [d.decision for r in records for d in scorer.score_records([r])]
    assert decisions == list(np.where(expected >= scorer.threshold, "reject", "approve"))


def test_contributions_equal_the_scikit_learn_reference(
    scorer: Scorer, applicants: pd.DataFrame
) -> None:
    assert scorer.fast is not None
    _, contributions = scorer.fast.run_frame(applicants)
    reference = reference_contributions(scorer.pipeline, applicants)
    assert np.max(np.abs(contributions - reference)) <= 1e-5


def test_contributions_add_up_to_the_forest_probability(
    scorer: Scorer, applicants: pd.DataFrame
) -> None:
    assert scorer.fast is not None
    encoded = scorer.fast.encoder.encode_frame(applicants)
    _, raw, contributions = scorer.fast.run_raw(encoded)
    assert np.max(np.abs(scorer.fast.bias + contributions.sum(axis=1) - raw)) <= 1e-5


def _shap_by_attribute(pipeline: Any, applicants: pd.DataFrame) -> np.ndarray:
    """Exact TreeSHAP of the forests' probability of bad, summed to codebook attributes."""
    import shap

    lineage = attribute_lineage(pipeline, read_layout(pipeline))
    encoded = np.asarray(pipeline[:-1].transform(applicants), dtype=np.float64)
    forests = [forest for forest, _ in components(pipeline)]
    total = np.zeros((len(applicants), len(ATTRIBUTES)))
    for forest in forests:
        values = np.asarray(shap.TreeExplainer(forest).shap_values(encoded, check_additivity=False))
        bad = values[..., 1] if values.ndim == 3 else values[1]
        total += bad @ lineage
    return total / len(forests)


def test_reasons_rank_like_shap(scorer: Scorer, applicants: pd.DataFrame) -> None:
    sample = applicants.sample(150, random_state=0).reset_index(drop=True)
    assert scorer.fast is not None
    _, ours = scorer.fast.run_frame(sample)
    shap_values = _shap_by_attribute(scorer.pipeline, sample)
    ours_top, shap_top = top_reasons(ours), top_reasons(shap_values)
    top1 = np.mean(ours_top[:, 0] == shap_top[:, 0])
    overlap = np.mean(
        [
            len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, min((a >= 0).sum(), (b >= 0).sum()))
            for a, b in zip(ours_top, shap_top, strict=True)
        ]
    )
    # Path contributions and SHAP agree on what matters most for nearly every applicant.
    assert top1 >= 0.8, top1
    assert overlap >= 0.7, overlap


def test_score_adds_reason_columns(scorer: Scorer, applicants: pd.DataFrame) -> None:
    scored = scorer.score(applicants.head(50))
    assert list(scored.columns) == [
        "probability_bad",
        "risk_class",
        "risk_label",
        "decision",
        *REASON_COLUMNS,
    ]
    first = scorer.score_records(applicants.head(1).to_dict("records"))[0]
    assert scored.loc[0, "reason_1"] == first.reasons[0].text
    assert all(scored["reason_1"].str.contains(": "))


def test_predict_file_writes_probabilities_decisions_and_reasons(
    scorer: Scorer, applicants: pd.DataFrame, tmp_path: Path
) -> None:
    output = tmp_path / "scored.csv"
    assert predict_file(scorer, DATA, output, chunk_rows=300) == 1000
    with output.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1000
    assert set(REASON_COLUMNS) <= set(rows[0])
    expected = scorer.pipeline.predict_proba(applicants)[:, 1]
    written = np.array([float(r["probability_bad"]) for r in rows])
    assert np.max(np.abs(written - expected)) <= 2e-6
    rejected = [r["decision"] == "reject" for r in rows]
    assert rejected == list(expected >= scorer.threshold)


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


def test_skewed_encoder_disables_fast_path(
    model_dir: Path, applicants: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = fastpath._derived_row

    def skewed(record: Any, derivation: Any) -> dict[str, Any]:
        return {**original(record, derivation), "monthly_installment": 0.0}

    monkeypatch.setattr(fastpath, "_derived_row", skewed)
    from credit_risk.registry import load_exported

    pipeline, metadata = load_exported(model_dir)
    with pytest.raises(FastPathUnavailable, match="encoder"):
        load_or_build(pipeline, metadata, None)
    # The scorer falls back to scikit-learn: same decisions and reasons, only slower.
    slow = Scorer.from_pipeline(pipeline, metadata)
    assert slow.fast is None
    fast = Scorer.from_folder(model_dir, compile_fast=True)
    monkeypatch.setattr(fastpath, "_derived_row", original)
    rows = applicants.head(20)
    assert np.allclose(
        slow.score(rows)["probability_bad"], fast.score(rows)["probability_bad"], atol=1e-5
    )
    assert slow.score(rows)["reason_1"].tolist() == fast.score(rows)["reason_1"].tolist()


@pytest.mark.parametrize("method", ["sigmoid", "isotonic", None])
def test_fast_path_compiles_calibrated_and_bare_forests(
    method: str | None, applicants: pd.DataFrame
) -> None:
    from imblearn.ensemble import BalancedRandomForestClassifier
    from imblearn.pipeline import Pipeline
    from sklearn.calibration import CalibratedClassifierCV

    from credit_risk.features import FeatureEngineer
    from credit_risk.model import build_encoder

    target = read_applicants(DATA).target
    assert target is not None
    forest = BalancedRandomForestClassifier(n_estimators=25, max_depth=6, random_state=0, n_jobs=1)
    classifier: Any = (
        forest
        if method is None
        else CalibratedClassifierCV(forest, method=method, cv=3, ensemble=method == "isotonic")
    )
    pipeline = Pipeline(
        [
            ("features", FeatureEngineer()),
            ("encode", build_encoder(False)),
            ("classifier", classifier),
        ]
    )
    pipeline.fit(applicants, target.to_numpy())
    fast = load_or_build(pipeline, {"run_id": f"calibrated-{method}"}, None)
    expected = pipeline.predict_proba(applicants)[:, 1]
    probability, _ = fast.run_frame(applicants)
    assert np.max(np.abs(probability - expected)) <= 1e-5


def test_scorer_loads_the_registered_champion(trained: Any) -> None:
    settings, result = trained
    uri = f"models:/{settings.registered_model_name}@{settings.champion_alias}"
    scorer = Scorer.from_uri(uri, settings.tracking_uri)
    assert scorer.version == result.version
    assert scorer.threshold == pytest.approx(result.threshold)
    assert scorer.fast is not None
    assert "cost" in scorer.metadata["test_metrics"]
    frame = read_applicants(DATA).features.head(5)
    assert list(frame.columns) == list(FEATURE_NAMES)
    assert len(scorer.score(frame)) == 5


def test_batch_engine_matches_pipeline_and_onnx(scorer: Scorer, applicants: pd.DataFrame) -> None:
    assert scorer.fast is not None
    encoded = scorer.fast.encoder.encode_frame(applicants)
    expected = scorer.pipeline.predict_proba(applicants)[:, 1]
    trees, _, by_trees = scorer.fast.run_raw(encoded, engine="trees")
    _, _, by_onnx = scorer.fast.run_raw(encoded, engine="onnx")
    assert np.max(np.abs(trees - expected)) <= 1e-5
    assert np.array_equal(trees >= scorer.threshold, expected >= scorer.threshold)
    assert np.max(np.abs(by_trees - by_onnx)) <= 1e-5


def test_batch_engine_numpy_fallback_gives_the_same_sums(
    scorer: Scorer, applicants: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert scorer.fast is not None
    encoded = scorer.fast.encoder.encode_frame(applicants)
    compiled = scorer.fast.forest.run(encoded, threads=2)
    monkeypatch.setattr(fastpath, "_kernel", lambda: fastpath._accumulate_numpy)
    assert np.array_equal(scorer.fast.forest.run(encoded, threads=1), compiled)


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
        assert np.max(np.abs(ours["probability_bad"] - expected)) <= 1e-5
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
    assert np.max(np.abs(scorer.score(applicants)["probability_bad"] - expected)) <= 1e-5
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
