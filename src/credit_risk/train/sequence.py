"""The training sequence, defined once: its named steps, the step runner (the flow makes each
step a Prefect task), :func:`run_training`, :func:`train` and the CLI's summary."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

from credit_risk.config import Family, Settings
from credit_risk.data import file_sha256
from credit_risk.registry import (
    GateDecision,
)
from credit_risk.scorecard.family import scorecard_params
from credit_risk.train.fitting import (
    LoggedRun,
    SearchSummary,
    Split,
    fit_evaluate,
    fit_exported,
    gbm_params,
    run_data,
    search_params,
    split_training_data,
    with_reasons,
)
from credit_risk.train.recording import (
    export_version,
    gate_version,
    log_run,
    model_metadata,
    register_version,
)
from credit_risk.training_data import pin_outcomes

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class TrainingResult:
    """What a training run produced."""

    run_id: str
    model_uri: str
    model_name: str
    version: str
    params: dict[str, Any]
    threshold: float
    test_metrics: dict[str, float]
    cv_metrics: dict[str, float]
    gate: GateDecision
    champion_version: str
    exported_to: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    # Which rows the registered model was fitted on, and where the test figures come from.
    fitted_on: str = ""
    test_figures: str = ""


class StepRunner(Protocol):
    """Runs one named step of :func:`run_training` (the flow's runner makes it a Prefect task)."""

    def __call__(self, name: str, step: Callable[P, R], /) -> Callable[P, R]: ...


def call_directly(name: str, step: Callable[P, R], /) -> Callable[P, R]:
    """The default step runner: the step itself, in this process."""
    return step


@dataclass(frozen=True)
class DataSummary:
    """What the data check found: the file, its checksum, the split sizes, the bad rate."""

    path: str
    sha256: str
    train_rows: int
    test_rows: int
    bad_rate: float
    # Labelled decisions read from the decision log (training with outcomes).
    labelled_rows: int = 0


@dataclass(frozen=True)
class FitSummary:
    """What the fit hands on: ids and small metric dicts, not the fitted model."""

    run_id: str
    model_uri: str
    threshold: float
    test_metrics: dict[str, float]
    cv_metrics: dict[str, float] = field(repr=False)
    # Promotion-gate limits the fairness audit breaks (credit_risk.card.assess_run).
    limits_failed: list[str] | None
    # metadata.json of the export, but for the version number (not known before registering).
    metadata: dict[str, Any] = field(repr=False)
    # Registry version tags summarising the dataset fingerprint.
    data_tags: dict[str, str] = field(default_factory=dict, repr=False)
    # Which rows the registered model was fitted on, and where the test figures come from.
    fitted_on: str = ""
    test_figures: str = ""


@dataclass(frozen=True)
class TrainingRun:
    """A finished training run: what the data check found and what the run produced."""

    data: DataSummary
    result: TrainingResult


def validate_data(settings: Settings) -> DataSummary:
    """Read, validate and split the run's rows: bad data fails here, before any tuning."""
    data = run_data(settings)
    split = Split(*data.split())
    return DataSummary(
        path=str(settings.data_path),
        sha256=file_sha256(Path(settings.data_path)),
        train_rows=len(split.y_train),
        test_rows=len(split.y_test),
        bad_rate=float(split.y_train.mean()),
        labelled_rows=int(data.labelled.sum()),
    )


def tune_params(settings: Settings) -> SearchSummary:
    """Optuna search on the training split (or the stored study's best with ``trials=0``)."""
    params, study = search_params(settings, split_training_data(settings))
    return SearchSummary(params, study.study_name, float(study.best_value))


def fit_and_log(
    settings: Settings, params: dict[str, Any], search: SearchSummary | None
) -> FitSummary:
    """Fit on the training split, evaluate on the test split, fit the model to export
    (``settings.fit_rows``), and log the run and that model to MLflow."""
    data = run_data(settings)
    split = Split(*data.split())
    evaluation = fit_evaluate(settings, params, split)
    exported = fit_exported(settings, evaluation.params, data, evaluation.pipeline)
    exported = with_reasons(exported, evaluation.threshold)
    logged = log_run(settings, evaluation, exported, split, search)
    return FitSummary(
        run_id=logged.run_id,
        model_uri=logged.model_uri,
        threshold=evaluation.threshold,
        test_metrics=evaluation.test_metrics,
        cv_metrics=evaluation.cv_metrics,
        # A model that cannot give reasons for its rejections is never promoted.
        limits_failed=[
            *evaluation.responsible.limits_failed,
            *([exported.reasons_unavailable] if exported.reasons_unavailable else []),
        ],
        metadata=model_metadata(settings, logged.run_id, "", evaluation, exported),
        data_tags=exported.tags(),
        fitted_on=exported.description(),
        test_figures=exported.test_figures(),
    )


def run_training(
    settings: Settings,
    params: dict[str, Any] | None = None,
    output: Path | None = None,
    run_step: StepRunner = call_directly,
) -> TrainingRun:
    """The training sequence, each step run through ``run_step`` under its name.

    Args:
        settings: all configuration (data, seed, objective, trials, stores, family).
        params: fixed classifier hyperparameters; None runs the Optuna search (a scorecard
            and gradient boosting are not tuned: None takes their parameters from the
            settings).
        output: also export this run's model (champion or not) to this folder.
        run_step: how each step runs (default: directly; the flow: as a Prefect task).

    Returns:
        The data check's summary and the run's result.
    """
    started = time.perf_counter()
    # Every step (and the gate) reads the labelled decisions whose outcomes are known now.
    settings = pin_outcomes(settings)
    data = run_step("validate-data", validate_data)(settings)
    search = None
    if params is None and settings.family is Family.SCORECARD:
        params = scorecard_params(settings)  # nothing to tune: binning is fitted per attribute
    if params is None and settings.family is Family.GBM:
        params = gbm_params(settings)  # fixed small parameters: nothing is searched
    if params is None:
        search = run_step("tune", tune_params)(settings)
        params = search.params
    fitted = run_step("fit-evaluate", fit_and_log)(settings, params, search)
    logged = LoggedRun(fitted.run_id, fitted.model_uri)
    version = run_step("register", register_version)(
        settings, logged, fitted.threshold, fitted.data_tags
    )
    gate, champion_number = run_step("promotion-gate", gate_version)(
        settings, fitted.run_id, version, fitted.limits_failed
    )
    metadata = {**fitted.metadata, "model_version": version, "gate": gate.evidence}
    exported = run_step("export", export_version)(
        settings, fitted.model_uri, metadata, gate.promote, output
    )
    result = TrainingResult(
        run_id=fitted.run_id,
        model_uri=fitted.model_uri,
        model_name=settings.registered_model_name,
        version=version,
        params=params,
        threshold=fitted.threshold,
        test_metrics=fitted.test_metrics,
        cv_metrics=fitted.cv_metrics,
        gate=gate,
        champion_version=champion_number,
        exported_to=exported,
        seconds=time.perf_counter() - started,
        fitted_on=fitted.fitted_on,
        test_figures=fitted.test_figures,
    )
    return TrainingRun(data, result)


def train(
    settings: Settings, params: dict[str, Any] | None = None, output: Path | None = None
) -> TrainingResult:
    """Run one training run end to end, in this process (:func:`run_training`).

    Args:
        settings: all configuration (data, seed, objective, trials, stores).
        params: fixed classifier hyperparameters; None runs the Optuna search.
        output: also export this run's model (champion or not) to this folder.

    Returns:
        The run's ids, metrics, and the promotion decision.
    """
    return run_training(settings, params, output).result


def result_summary(result: TrainingResult) -> str:
    """Readable summary of a run, for the CLI."""
    lines = [
        f"run {result.run_id}  model {result.model_name} v{result.version} "
        f"({result.seconds:.1f} s)",
        f"threshold {result.threshold:.4f}  params {json.dumps(result.params)}",
        *([f"model: fitted on {result.fitted_on}"] if result.fitted_on else []),
        "test:  " + "  ".join(f"{k}={v:.4f}" for k, v in result.test_metrics.items()),
        *([f"       (test figures: {result.test_figures})"] if result.test_figures else []),
        "cv:    "
        + "  ".join(
            f"{k[:-5]}={v:.4f}±{result.cv_metrics[k[:-5] + '_std']:.4f}"
            for k, v in result.cv_metrics.items()
            if k.endswith("_mean")
        ),
        f"gate:  {result.gate.reason}; champion is v{result.champion_version}",
    ]
    evidence = result.gate.evidence or {}
    if evidence.get("summary"):
        lines.append(f"       evidence: {evidence['summary']}")
    lines += [f"       note: {note}" for note in evidence.get("notes", [])]
    if evidence:
        lines.append(f"       gate took {evidence['seconds']:.1f} s")
    lines += [f"exported to {path}" for path in result.exported_to]
    return "\n".join(lines)
