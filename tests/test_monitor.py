"""Drift monitor: the tests' statistics and nulls, the stored reference, per-version windows."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, ks_2samp
from typer.testing import CliRunner

from credit_risk.config import Settings
from credit_risk.data import load_training_data, split_dataset
from credit_risk.model_folder import (
    DRIFT_REFERENCE_ARTIFACT,
    DRIFT_REFERENCE_FILE,
    ModelFolderError,
    load_pipeline,
)
from credit_risk.monitor import (
    SCORE,
    Reference,
    Window,
    assess_drift,
    folder_reference,
    monitor,
    parse_since,
)
from credit_risk.monitor.reference import InvalidReference
from credit_risk.monitor.statistics import (
    CHI_SQUARE,
    KS,
    chi_square_test,
    choose_test,
    ks_distance,
    ks_null,
    monte_carlo_outcome,
    pearson_statistic,
    psi_band,
    psi_categorical,
    psi_numeric,
)
from credit_risk.registry import read_metadata
from tests.conftest import DATA


def shifted(sample: pd.DataFrame) -> pd.DataFrame:
    """Longer, larger credits from applicants overdrawn on their checking account."""
    out = sample.copy()
    out["duration_months"] = np.minimum(out["duration_months"] * 2, 120)
    out["credit_amount"] = out["credit_amount"] * 1.8
    out["checking_account_status"] = "A11"
    return out.astype(sample.dtypes.to_dict())


@pytest.fixture(scope="module")
def split(applicants: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and held-out rows of the shipped data (seed 42)."""
    dataset = load_training_data(Settings(data_path=DATA))
    x_train, x_test, _, _ = split_dataset(dataset, 0.2, 42)
    return x_train, x_test


@pytest.fixture(scope="module")
def reference(split: tuple[pd.DataFrame, pd.DataFrame]) -> Reference:
    """Training rows' attributes; stand-in held-out scores (a fixed function of the inputs)."""
    return Reference.from_rows(split[0], stand_in_score(split[1]))


def stand_in_score(rows: pd.DataFrame) -> np.ndarray:
    """A score that rises with the duration and the amount, like the model's."""
    z = 0.04 * (rows["duration_months"] - 20) + 0.0002 * (rows["credit_amount"] - 3000)
    return (1 / (1 + np.exp(-(z - 0.8)))).to_numpy()


def scored(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.reset_index(drop=True).assign(**{SCORE: stand_in_score(rows)})


def test_psi_is_zero_for_identical_and_large_for_disjoint_samples() -> None:
    values = np.arange(1000.0)
    assert psi_numeric(values, values) == pytest.approx(0.0, abs=1e-9)
    assert psi_numeric(values, values + 2000) > 1.0
    codes = pd.Series(["A"] * 50 + ["B"] * 50)
    assert psi_categorical(codes, codes, ["A", "B", "C"]) == pytest.approx(0.0, abs=1e-9)
    assert [psi_band(v) for v in (0.05, 0.1, 0.3)] == ["stable", "watch", "act"]


def test_each_attribute_gets_the_test_its_codebook_kind_calls_for() -> None:
    assert choose_test("checking_account_status") == CHI_SQUARE
    # Bands and small counts: categories, not a continuous distribution.
    assert {choose_test(n) for n in ("installment_rate", "residence_since", "people_liable")} == {
        CHI_SQUARE
    }
    assert {choose_test(n) for n in ("credit_amount", "duration_months", "age_years", SCORE)} == {
        KS
    }


def test_statistics_are_scipys() -> None:
    rng = np.random.default_rng(3)
    reference, window = np.sort(rng.normal(size=300)), np.sort(rng.normal(0.2, 1, size=70))
    scipy_d = ks_2samp(reference, window).statistic
    assert ks_distance(reference, window) / (300 * 70) == pytest.approx(scipy_d, abs=1e-12)
    ref_counts, win_counts = np.array([120, 80, 30, 5]), np.array([20, 25, 10, 3])
    expected = chi2_contingency(np.vstack([ref_counts, win_counts]), correction=False).statistic
    got = pearson_statistic(win_counts, ref_counts + win_counts, 235, 58)
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_simulated_ks_null_matches_the_exact_distribution() -> None:
    """Monte Carlo p-values of the cached null agree with scipy's exact two-sample p-values."""
    null = ks_null(60, 40, 20_000)
    rng = np.random.default_rng(5)
    for shift in (0.0, 0.4, 0.7):
        reference = np.sort(rng.normal(size=60))
        window = np.sort(rng.normal(shift, 1, size=40))
        exact = ks_2samp(reference, window, method="exact").pvalue
        p_value, _ = monte_carlo_outcome(ks_distance(reference, window), null, 0.01)
        # binomial standard error of a p-value from 20 000 draws, with room
        assert p_value == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / 20_000) + 2e-4)


def test_a_statistic_alarms_exactly_when_it_exceeds_its_threshold() -> None:
    null = np.sort(np.random.default_rng(0).chisquare(3, size=999))
    level = 0.01  # at most 9 of 999 null values may reach the statistic
    _, threshold = monte_carlo_outcome(0.0, null, level)
    assert threshold == null[-10]
    for observed in (threshold - 1e-6, threshold, threshold + 1e-6, null[-1] + 1):
        p_value, _ = monte_carlo_outcome(observed, null, level)
        assert (p_value <= level) == (observed > threshold), observed


def test_stopping_early_decides_as_the_full_simulation(
    reference: Reference, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    held_out = split[1]
    windows = [
        Window("1", scored(held_out.sample(n, replace=True, random_state=seed)), reference)
        for seed, n in enumerate((50, 80, 200, 400))
    ] + [Window("2", scored(shifted(held_out.sample(60, random_state=9))), reference)]
    full = assess_drift(windows, min_rows=1, seed=11)
    early = assess_drift(windows, min_rows=1, seed=11, stop_early=True)
    assert (full.table["alarm"] == early.table["alarm"]).all()
    assert full.drift and early.drift
    assert full.table["threshold"].notna().all()


def test_chi_square_permutation_test_holds_its_level_on_rare_categories() -> None:
    """A category 1 % of the reference in 50-row windows: the chi-square approximation alarms
    about twice as often as its level there; the permutation test does not."""
    from scipy.stats import binom

    rng = np.random.default_rng(1)
    population = np.array([0.6, 0.3, 0.09, 0.01])
    level, windows = 0.01, 2000
    alarms = approximate = 0
    for _ in range(windows):
        ref = rng.multinomial(800, population)
        win = rng.multinomial(50, population)
        seen = (ref + win) > 0
        table = np.vstack([ref[seen], win[seen]])
        approximate += chi2_contingency(table, correction=False).pvalue <= level
        counts = [dict(zip("abcd", row.tolist(), strict=False)) for row in table]
        _, p_value, _ = chi_square_test(*counts, 999, level, rng, stop_early=True)
        alarms += p_value <= level
    # A test at level 1 % alarms on more than 32 of 2000 quiet windows with probability 0.5 %.
    bound = 32
    assert binom.sf(bound, windows, level) < 0.005
    assert alarms <= bound < approximate


def test_assess_drift_flags_a_shifted_sample(
    reference: Reference, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    current = scored(shifted(split[1].sample(150, random_state=1)))
    result = assess_drift([Window("1", current, reference)], min_rows=50)
    assert result.drift and result.tests == 21
    alarms = set(result.versions[0].alarms["attribute"])
    assert {"duration_months", "credit_amount", "checking_account_status", SCORE} <= alarms
    assert "telephone" not in alarms
    row = result.table.set_index("attribute").loc["credit_amount"]
    assert row["statistic"] > row["threshold"] and row["p_value"] <= result.level
    assert "credit_amount" in result.summary() and "ALARM" in result.summary()


def test_assess_drift_passes_unshifted_samples(
    reference: Reference, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    for seed in range(3):
        current = scored(split[1].sample(150, random_state=seed))
        result = assess_drift([Window("1", current, reference)], min_rows=50, seed=seed)
        assert not result.drift, result.summary()
        assert (result.table["p_value"] > result.level).all()
        assert (result.table["statistic"] <= result.table["threshold"]).all()


def test_one_correction_covers_every_version_of_the_run(
    reference: Reference, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    held_out = split[1]
    quiet = Window("1", scored(held_out.sample(120, random_state=2)), reference)
    moved = Window("2", scored(shifted(held_out.sample(120, random_state=3))), reference)
    small = Window("3", scored(held_out.head(10)), None)
    result = assess_drift([quiet, moved, small], alarm_rate=0.05, min_rows=50)
    assert result.tests == 42 and result.level == pytest.approx(0.05 / 42)
    drift = {v.model_version: v.drift for v in result.versions}
    assert drift == {"1": False, "2": True, "3": False}
    assert not result.versions[2].enough_data
    assert all(r.startswith("version 2:") for r in result.reasons)


def test_too_few_decisions_give_no_verdict(
    reference: Reference, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    result = assess_drift([Window("1", scored(shifted(split[1].head(10))), reference)])
    assert not result.drift and not result.enough_data
    assert "not enough" in result.summary()


def test_reference_round_trips_and_a_bad_one_names_its_field(reference: Reference) -> None:
    document = json.loads(json.dumps(reference.to_json()))
    again = Reference.from_json(document)
    assert again.attributes == reference.attributes
    assert np.array_equal(again.scores, reference.scores) and again.rows == 800
    for edit, field in [
        (lambda d: d.update(format=2), "format"),
        (lambda d: d["attributes"].pop("purpose"), "attributes.purpose"),
        (lambda d: d["attributes"]["purpose"].update(A40=-1), "attributes.purpose"),
        (lambda d: d["attributes"]["housing"].update(A151=10_000), "attributes.housing"),
        (lambda d: d.update(scores=[0.2, 1.5]), "scores"),
    ]:
        broken = json.loads(json.dumps(document))
        edit(broken)
        with pytest.raises(InvalidReference) as raised:
            Reference.from_json(broken)
        assert raised.value.field == field


def test_parse_since_reads_durations_and_dates() -> None:
    now = datetime(2026, 1, 8, tzinfo=UTC)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-01-01", now) == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_since(None) is None


# --- with a trained model -------------------------------------------------------------------


def test_training_stores_the_models_own_reference(
    trained: tuple[Settings, Any], model_dir: Path
) -> None:
    """Training rows' counts and held-out probabilities, in the folder and in the MLflow run.

    The exported model is fitted on every row (``fit_rows`` ``all``): the counts are over all
    of them; it has no held-out rows, so the scores are the same recipe's fitted on the
    training split, on the test split (in-sample scores would be more extreme than served ones).
    """
    from mlflow.tracking import MlflowClient

    from credit_risk.model import build_model

    settings, result = trained
    metadata = read_metadata(model_dir)
    assert metadata["drift_reference"] == DRIFT_REFERENCE_FILE and metadata["fit_rows"] == "all"
    stored = folder_reference(settings.model_copy(update={"seed": 7}), model_dir)
    dataset = load_training_data(settings)
    x_train, x_test, y_train, _ = split_dataset(dataset, metadata["test_size"], metadata["seed"])
    recipe = build_model(settings, metadata["params"]).fit(x_train, y_train.to_numpy())
    assert np.allclose(stored.scores, recipe.predict_proba(x_test)[:, 1], atol=1e-9)
    assert stored.attributes == Reference.from_rows(dataset.features, []).attributes
    assert stored.provenance["seed"] == metadata["seed"]
    artifacts = {
        a.path for a in MlflowClient(settings.tracking_uri).list_artifacts(result.run_id, "drift")
    }
    assert DRIFT_REFERENCE_ARTIFACT in artifacts


def _copy(model_dir: Path, tmp_path: Path, version: str | None = None) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    if version is not None:
        metadata = json.loads((folder / "metadata.json").read_text())
        metadata["model_version"] = version
        (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


def test_a_folder_without_a_stored_reference_is_rebuilt_with_its_own_seed_and_says_so(
    trained: tuple[Settings, Any],
    model_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings, _ = trained
    folder = _copy(model_dir, tmp_path)
    stored = folder_reference(settings, folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    del metadata["drift_reference"]
    (folder / "metadata.json").write_text(json.dumps(metadata))
    (folder / DRIFT_REFERENCE_FILE).unlink()
    other_seed = settings.model_copy(update={"seed": metadata["seed"] + 1})
    with caplog.at_level(logging.WARNING, logger="credit_risk.monitor"):
        rebuilt = folder_reference(other_seed, folder)
    assert "no stored drift reference" in caplog.text
    # Rebuilt as a folder exported before references were stored (all fitted on the training
    # split): the split of the model's own seed, scored by the folder's pipeline.
    x_train, x_test, _, _ = split_dataset(
        load_training_data(settings), metadata["test_size"], metadata["seed"]
    )
    assert np.allclose(rebuilt.scores, load_pipeline(folder).predict_proba(x_test)[:, 1])
    assert rebuilt.attributes == Reference.from_rows(x_train, []).attributes
    assert len(rebuilt.scores) == len(stored.scores)
    assert "rebuilt" in rebuilt.source

    metadata.pop("seed")
    (folder / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ModelFolderError, match=r"no stored drift reference.*train the model again"):
        folder_reference(settings, folder)


def test_a_named_reference_that_is_missing_or_broken_is_refused(
    trained: tuple[Settings, Any], model_dir: Path, tmp_path: Path
) -> None:
    settings, _ = trained
    folder = _copy(model_dir, tmp_path)
    path = folder / DRIFT_REFERENCE_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), "scores": "none"}))
    with pytest.raises(ModelFolderError) as raised:
        folder_reference(settings, folder)
    assert raised.value.field == "scores" and Path(raised.value.path).name == DRIFT_REFERENCE_FILE
    path.unlink()
    with pytest.raises(ModelFolderError, match="missing"):
        folder_reference(settings, folder)


def _log_decisions(
    url: str, frame: pd.DataFrame, probability: np.ndarray, created_at: datetime, version: str
) -> None:
    import sqlalchemy as sa

    from credit_risk.decision_log import create_table, decision_row, decisions_table, make_engine

    engine = make_engine(url)
    create_table(engine)
    rows = [
        decision_row(
            f"{version}-{created_at.timestamp()}-{i}",
            created_at,
            version,
            {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()},
            float(p),
            2 if p >= 0.3 else 1,
            "reject" if p >= 0.3 else "approve",
            0.3,
            [],
        )
        for i, (record, p) in enumerate(
            zip(frame.to_dict(orient="records"), probability, strict=True)
        )
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(decisions_table), rows)
    engine.dispose()


def test_monitor_command_reads_the_log_and_exits_on_drift(
    trained: tuple[Settings, Any],
    model_dir: Path,
    split: tuple[pd.DataFrame, pd.DataFrame],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from credit_risk.cli import app
    from credit_risk.registry import load_exported

    settings, _ = trained
    pipeline, metadata = load_exported(model_dir)
    version = metadata["model_version"]
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    old = datetime.now(UTC) - timedelta(days=30)
    recent = datetime.now(UTC) - timedelta(hours=1)
    held_out = split[1]
    calm = held_out.sample(150, random_state=3)
    drifted = shifted(held_out.sample(150, random_state=4))
    _log_decisions(url, calm, pipeline.predict_proba(calm)[:, 1], old, version)
    _log_decisions(url, drifted, pipeline.predict_proba(drifted)[:, 1], recent, version)
    for key, value in {
        "CREDIT_RISK_DATA_PATH": str(DATA),
        "CREDIT_RISK_DECISION_LOG_URL": url,
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
    }.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    common = ["monitor", "--model", str(model_dir)]

    calm_report = tmp_path / "calm.html"
    outcome = runner.invoke(
        app,
        [*common, "--until", (old + timedelta(days=1)).isoformat(), "--report", str(calm_report)],
    )
    assert outcome.exit_code == 0, outcome.output
    assert "no drift" in outcome.output

    drift_report = tmp_path / "drift.html"
    outcome = runner.invoke(app, [*common, "--since", "2d", "--report", str(drift_report)])
    assert outcome.exit_code == 1, outcome.output
    assert "DRIFT" in outcome.output and "duration_months" in outcome.output
    page = drift_report.read_text()
    assert "DRIFT" in page and "data:image/png;base64," in page and SCORE in page
    assert "threshold at this n" in page
    report = json.loads(drift_report.with_suffix(".json").read_text())
    assert report["drift"] and report["tests"] == 21
    tests = {t["attribute"]: t for t in report["versions"][0]["tests"]}
    assert tests["credit_amount"]["alarm"] and tests["credit_amount"]["rows"] == 150


def test_each_version_is_tested_against_its_own_reference(
    trained: tuple[Settings, Any],
    model_dir: Path,
    split: tuple[pd.DataFrame, pd.DataFrame],
    tmp_path: Path,
) -> None:
    """The folder's version reads the folder; an older one its run's; an unknown one is named."""
    from credit_risk.registry import load_exported

    settings, result = trained
    pipeline, _ = load_exported(model_dir)
    folder = _copy(model_dir, tmp_path, version="99")
    held_out = split[1]

    def decided_by(version: str, rows: pd.DataFrame) -> pd.DataFrame:
        frame = rows.reset_index(drop=True)
        return frame.assign(**{SCORE: pipeline.predict_proba(rows)[:, 1], "model_version": version})

    decisions = pd.concat(
        [
            decided_by(result.version, held_out.sample(120, random_state=5)),
            decided_by("99", shifted(held_out.sample(120, random_state=6))),
            decided_by("7", held_out.sample(60, random_state=7)),
        ],
        ignore_index=True,
    )
    outcome = monitor(settings, model_dir=folder, report=tmp_path / "r.html", decisions=decisions)
    by_version = {v.model_version: v for v in outcome.versions}
    assert set(by_version) == {result.version, "99"} and set(outcome.skipped) == {"7"}
    assert "version 7" in outcome.skipped["7"] and "version 7" in outcome.summary()
    registry = by_version[result.version].reference
    assert registry is not None and registry.source.startswith("models:/")
    assert by_version["99"].reference is not None
    assert by_version["99"].reference.source == str(folder / DRIFT_REFERENCE_FILE)
    assert outcome.tests == 42 and outcome.level == pytest.approx(0.05 / 42)
    assert by_version["99"].drift and not by_version[result.version].drift


def test_logged_labels_are_read_back_as_codes(applicants: pd.DataFrame) -> None:
    from credit_risk.monitor.decisions import decisions_to_frame

    record = applicants.iloc[0].to_dict()
    record["foreign_worker"] = "no"  # the label of A202
    frame = decisions_to_frame(
        [
            {
                "input": record,
                "probability_bad": 0.2,
                "request_id": "r",
                "created_at": None,
                "model_version": "1",
            }
        ]
    )
    assert frame.loc[0, "foreign_worker"] == "A202"
    assert frame.loc[0, SCORE] == 0.2


def test_reading_a_missing_sqlite_log_creates_nothing(tmp_path: Path) -> None:
    """The monitor flow reads the log too: a log that is not there stays not there."""
    from credit_risk.monitor import read_decisions

    missing = tmp_path / "nothing.db"
    assert read_decisions(f"sqlite:///{missing}").empty
    assert not missing.exists()
