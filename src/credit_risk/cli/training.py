"""Training commands: ``train``, ``tune``, ``evaluate`` (the repeated-CV report)."""

from __future__ import annotations

from typing import Annotated

import typer

from credit_risk.cli.core import (
    DataOption,
    OutputOption,
    SeedOption,
    TrainingFlags,
    VerboseOption,
    setup_logging,
    training_flags,
)
from credit_risk.config import (
    Family,
    FitRows,
    ThresholdRule,
    get_settings,
)


@training_flags
def train(
    flags: TrainingFlags,
    output: OutputOption = None,
    threshold_rule: Annotated[
        ThresholdRule | None,
        typer.Option(
            "--threshold-rule",
            help="bayes: 1/6 on calibrated probabilities (default); cross_validated: the "
            "cost-optimal threshold of the out-of-fold predictions. Cost and auc objectives.",
        ),
    ] = None,
    family: Annotated[
        Family | None,
        typer.Option(
            "--family",
            help="scorecard: a points scorecard (default; not tuned, --trials is ignored); "
            "forest: the tuned balanced random forest; gbm: gradient boosting "
            "(HistGradientBoosting, fixed small parameters, not tuned, --trials is ignored).",
        ),
    ] = None,
    fit_rows: Annotated[
        FitRows | None,
        typer.Option(
            "--fit-rows",
            help="all: export the recipe refitted on every row after its test split is scored "
            "(default); split: export the model fitted on the training split only.",
        ),
    ] = None,
    verbose: VerboseOption = True,
) -> None:
    """Tune, train, evaluate, log to MLflow, register, gate and export a model."""
    from credit_risk.train import result_summary
    from credit_risk.train import train as run_training

    setup_logging(verbose)
    settings = flags.settings(threshold_rule=threshold_rule, family=family, fit_rows=fit_rows)
    result = run_training(settings, output=output)
    typer.echo(result_summary(result))
    typer.echo(
        f"MLflow store: {settings.tracking_uri} (run {result.run_id}); "
        f"champion export: {settings.model_dir}"
    )


def evaluate(
    data: DataOption = None,
    repeats: Annotated[int, typer.Option("--repeats", min=1)] = 5,
    folds: Annotated[int, typer.Option("--folds", min=2)] = 5,
    trials: Annotated[int, typer.Option("--trials", help="Inner Optuna trials per fold.")] = 15,
    seed: SeedOption = None,
    recipes: Annotated[
        str,
        typer.Option(
            help="Comma-separated recipes (also seed, logistic, defaults; name@include or "
            "name@exclude for a protected-attribute policy).",
        ),
    ] = "seed,scorecard,tuned,gbm,blend,tuned@include",  # = evaluate.report.DEFAULT_RECIPES
) -> None:
    """Nested repeated stratified CV of the families, corrected intervals, the default rule."""
    from credit_risk.evaluate.report import format_table, repeated_cv_report

    settings = get_settings(data_path=data, seed=seed)
    rows = repeated_cv_report(
        settings, [r.strip() for r in recipes.split(",")], repeats, folds, trials
    )
    typer.echo(format_table(rows, repeats, folds))


@training_flags
def tune(
    flags: TrainingFlags,
    n_jobs: Annotated[
        int | None, typer.Option("--n-jobs", help="Cores for the forest in this worker (-1 = all).")
    ] = None,
    sampler_seed: Annotated[
        int | None,
        typer.Option(
            "--sampler-seed", help="TPE seed of this worker (default: differs per process)."
        ),
    ] = None,
    verbose: VerboseOption = True,
) -> None:
    """Run one tuning worker of the forest's search: start it N times with the same --storage
    and --study-name (the scorecard, the default family, has nothing to tune)."""
    import os

    from credit_risk.train import split_training_data
    from credit_risk.tune import finished_trials
    from credit_risk.tune import tune as run_tuning

    setup_logging(verbose)
    settings = flags.settings(n_jobs=n_jobs, family=Family.FOREST)
    if settings.storage and sampler_seed is None:
        # Workers sharing a study must not draw the same random start-up points.
        sampler_seed = settings.seed * 100_003 + os.getpid()
    if sampler_seed is not None:
        settings = settings.model_copy(update={"sampler_seed": sampler_seed})
    split = split_training_data(settings)
    study = run_tuning(split.x_train, split.y_train, settings)
    typer.echo(
        f"study {study.study_name}: {finished_trials(study)} finished trials; "
        f"best {settings.objective.value}={study.best_value:.4f} "
        f"with {study.best_params}"
    )
