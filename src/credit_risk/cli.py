"""The ``credit-risk`` command line. Thin: each command wires package functions together."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer

from credit_risk.config import Objective, ProtectedPolicy, Settings, ThresholdRule, get_settings

app = typer.Typer(
    help="Cost-aware credit-risk scoring (Statlog German Credit).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("credit_risk").setLevel(logging.INFO)


DataOption = Annotated[Path | None, typer.Option("--data", help="UCI-format or CSV file.")]
SeedOption = Annotated[int | None, typer.Option("--seed")]
VerboseOption = Annotated[bool, typer.Option("--verbose/--quiet")]
OutputOption = Annotated[
    Path | None, typer.Option("--output", help="Also export this run's model to this folder.")
]


@dataclass(frozen=True)
class TrainingFlags:
    """The options ``train``, ``tune`` and ``flow run`` share (None: from the environment)."""

    data: DataOption = None
    trials: Annotated[int | None, typer.Option("--trials", help="Finished trials to reach.")] = None
    objective: Annotated[Objective | None, typer.Option("--objective")] = None
    seed: SeedOption = None
    storage: Annotated[str | None, typer.Option("--storage", help="Optuna storage URL.")] = None
    study_name: Annotated[
        str | None, typer.Option("--study-name", help="Resume/share a study.")
    ] = None
    protected: Annotated[
        ProtectedPolicy | None,
        typer.Option(
            "--protected", help="include or exclude protected attributes as model inputs."
        ),
    ] = None

    def settings(self, **extra: object) -> Settings:
        """Settings for a training or tuning command: these flags over the environment."""
        return get_settings(
            data_path=self.data,
            trials=self.trials,
            objective=self.objective,
            seed=self.seed,
            storage=self.storage,
            study_name=self.study_name,
            protected_policy=self.protected,
            **extra,
        )


def training_flags(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command the :class:`TrainingFlags` options, ahead of its own, as one argument.

    Typer reads a command's options from its signature: the returned command's signature is
    the flags followed by the command's own parameters, and it calls ``command`` with the flags
    gathered into a :class:`TrainingFlags` as its first argument.
    """
    hints = get_type_hints(TrainingFlags, include_extras=True)
    flags = [
        inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name]
        )
        for f in fields(TrainingFlags)
    ]
    own = list(inspect.signature(command, eval_str=True).parameters.values())[1:]
    parameters = [*flags, *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own)]

    @functools.wraps(command)
    def run(**options: Any) -> None:
        gathered = TrainingFlags(**{flag.name: options.pop(flag.name) for flag in flags})
        command(gathered, **options)

    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    return run


@app.command()
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
    verbose: VerboseOption = True,
) -> None:
    """Tune, train, evaluate, log to MLflow, register, gate and export a model."""
    from credit_risk.train import result_summary
    from credit_risk.train import train as run_training

    _logging(verbose)
    settings = flags.settings(threshold_rule=threshold_rule)
    result = run_training(settings, output=output)
    typer.echo(result_summary(result))
    typer.echo(
        f"MLflow store: {settings.tracking_uri} (run {result.run_id}); "
        f"champion export: {settings.model_dir}"
    )


class ScoringEngine(StrEnum):
    """Where ``credit-risk predict`` scores: this process, or a Spark job."""

    local = "local"
    spark = "spark"


@app.command()
def predict(
    # Text, not Path: with --engine spark these are URLs (s3a://, hdfs://) that Path would mangle.
    input: Annotated[
        str, typer.Option("--input", help="UCI-format or CSV file (spark: also Parquet, any URL).")
    ],
    output: Annotated[
        str, typer.Option("--output", help="CSV to write (spark: a Parquet or .csv folder).")
    ],
    model: Annotated[Path | None, typer.Option("--model", help="Exported model folder.")] = None,
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", min=1, help="Rows per chunk (memory grows with it).")
    ] = 50_000,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    engine: Annotated[
        ScoringEngine,
        typer.Option("--engine", help="local: this process; spark: a Spark job (pyspark)."),
    ] = ScoringEngine.local,
    spark_master: Annotated[
        str | None,
        typer.Option(
            "--spark-master", help="Spark master URL (default: spark-submit's, else local[*])."
        ),
    ] = None,
) -> None:
    """Score a file of applicants, streaming, into a CSV (probability, class, decision)."""
    from tqdm import tqdm

    from credit_risk.data import DataValidationError
    from credit_risk.scoring import Scorer, predict_file

    folder = model or get_settings().model_dir
    if engine is ScoringEngine.spark:
        _predict_with_spark(folder, input, output, spark_master, chunk_rows, progress)
        return
    if spark_master is not None:
        raise typer.BadParameter("only used with --engine spark", param_hint="--spark-master")
    # Light load from the verified fast-path cache when intact (no MLflow, no scikit-learn).
    scorer = Scorer.from_folder(folder, batch=True)
    with tqdm(unit=" rows", disable=not progress, desc="scoring") as bar:
        try:
            rows = predict_file(scorer, Path(input), Path(output), chunk_rows, progress=bar.update)
        except DataValidationError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from error
    typer.echo(f"wrote {rows} rows to {output}")


def _predict_with_spark(
    folder: Path, input: str, output: str, master: str | None, chunk_rows: int, progress: bool
) -> None:
    """``predict --engine spark`` (:mod:`credit_risk.spark_batch`); exit 2 on rejected rows."""
    from credit_risk.spark_batch import SparkBatchError, predict_with_spark

    try:
        run = predict_with_spark(folder, input, output, master, chunk_rows, progress)
    except SparkBatchError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(run.summary())
    problem = run.problem()
    if problem is not None:
        typer.echo(problem, err=True)
    raise typer.Exit(run.exit_code)


@app.command()
def evaluate(
    data: DataOption = None,
    repeats: Annotated[int, typer.Option("--repeats", min=1)] = 5,
    folds: Annotated[int, typer.Option("--folds", min=2)] = 5,
    trials: Annotated[int, typer.Option("--trials", help="Inner Optuna trials per fold.")] = 15,
    seed: SeedOption = None,
    recipes: Annotated[str, typer.Option(help="Comma-separated: seed,logistic,defaults,tuned.")] = (
        "seed,logistic,defaults,tuned"
    ),
) -> None:
    """Repeated stratified CV report of the model recipes (tuning nested in each fold)."""
    from credit_risk.evaluate.report import format_table, repeated_cv_report

    settings = get_settings(data_path=data, seed=seed)
    rows = repeated_cv_report(
        settings, [r.strip() for r in recipes.split(",")], repeats, folds, trials
    )
    typer.echo(format_table(rows, repeats, folds))


@app.command()
def info(model: Annotated[Path | None, typer.Option("--model")] = None) -> None:
    """Show the exported champion's metadata and where the MLflow store is."""
    import json

    from credit_risk.registry import read_metadata

    settings = get_settings()
    folder = model or settings.model_dir
    metadata = read_metadata(folder)
    typer.echo(
        json.dumps(
            {
                k: metadata[k]
                for k in (
                    "model_name",
                    "model_version",
                    "run_id",
                    "trained_at",
                    "objective",
                    "threshold",
                    "test_metrics",
                )
            },
            indent=2,
        )
    )
    typer.echo(f"exported model: {folder}; MLflow store: {settings.tracking_uri}")


# --- commands added by other modules (serve, tune, flow, monitor) register below ---


@app.command()
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
    """Run one tuning worker: start it N times with the same --storage and --study-name."""
    import os

    from credit_risk.train import split_training_data
    from credit_risk.tune import finished_trials
    from credit_risk.tune import tune as run_tuning

    _logging(verbose)
    settings = flags.settings(n_jobs=n_jobs)
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


flow_app = typer.Typer(
    help="Prefect training flow: run once or serve on a schedule.", no_args_is_help=True
)
app.add_typer(flow_app, name="flow")


@flow_app.command("run")
@training_flags
def flow_run(flags: TrainingFlags, output: OutputOption = None) -> None:
    """Run the training flow once (a temporary Prefect server starts if none is configured)."""
    import json
    import os

    # Prefect's temporary server gives up after 20 s by default, too short on a busy machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from credit_risk.flows import training_flow

    _logging(True)
    settings = flags.settings()
    result = training_flow(settings, output=str(output) if output else None)
    typer.echo(json.dumps(result, indent=2, default=str))


@flow_app.command("monitor")
def flow_monitor(
    since: Annotated[
        str | None,
        typer.Option("--since", help="Window of the decision log: 7d, 24h or an ISO date."),
    ] = "7d",
) -> None:
    """Check drift on the decision log and retrain (tune, gate, export) only if drift is found."""
    import json
    import os

    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from credit_risk.flows import monitor_flow

    _logging(True)
    result = monitor_flow(get_settings(), since=since)
    typer.echo(json.dumps(result, indent=2, default=str))


@flow_app.command("serve")
def flow_serve(
    cron: Annotated[str, typer.Option("--cron", help="Schedule (cron, UTC).")] = "0 3 * * 1",
    name: Annotated[str, typer.Option("--name", help="Deployment name.")] = "weekly-retraining",
) -> None:
    """Serve the scheduled retraining deployment from this process (needs a Prefect server)."""
    from credit_risk.flows import serve_weekly

    _logging(True)
    serve_weekly(cron, name)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Interface (127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default 8000).")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Worker processes.")
    ] = None,
    model: Annotated[Path | None, typer.Option("--model", help="Exported model folder.")] = None,
    model_uri: Annotated[
        str | None,
        typer.Option(
            "--model-uri",
            help="Serve a registered model, e.g. models:/german-credit-risk@champion.",
        ),
    ] = None,
) -> None:
    """Serve the API and the web page (uvicorn)."""
    import os
    import tempfile

    import uvicorn

    _logging(False)
    settings = get_settings(
        host=host, port=port, workers=workers, model_dir=model, model_uri=model_uri
    )
    # Worker processes read their settings from the environment: pass the flags on.
    os.environ["CREDIT_RISK_MODEL_DIR"] = str(settings.model_dir)
    if settings.model_uri:
        os.environ["CREDIT_RISK_MODEL_URI"] = settings.model_uri
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="credit-risk-metrics-")
    typer.echo(f"serving on http://{settings.host}:{settings.port} (docs at /docs)")
    uvicorn.run(
        "credit_risk.api:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level="warning",
        timeout_graceful_shutdown=30,
    )


@app.command()
def monitor(
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Decisions since: 7d, 24h, 90m or an ISO date/time (default: all)."
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="ISO date/time (default: now).")
    ] = None,
    log_url: Annotated[
        str | None, typer.Option("--log-url", help="Decision-log database URL (default: settings).")
    ] = None,
    model: Annotated[Path | None, typer.Option("--model", help="Exported model folder.")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="HTML report to write.")] = None,
    psi_limit: Annotated[
        float | None,
        typer.Option(
            "--psi-limit", help="PSI at or above which an attribute or the score has drifted."
        ),
    ] = None,
    data: DataOption = None,
) -> None:
    """Compare recent decisions with the training data; exit 1 when drift passes the limits."""
    from credit_risk.monitor import monitor as run_monitor
    from credit_risk.monitor import parse_since

    _logging(False)
    settings = get_settings(decision_log_url=log_url, monitor_psi_limit=psi_limit, data_path=data)
    result = run_monitor(
        settings, since=parse_since(since), until=parse_since(until), model_dir=model, report=report
    )
    typer.echo(result.summary())
    typer.echo(f"report: {result.report_path}")
    if result.drift:
        raise typer.Exit(1)


@app.command()
def card(
    model: Annotated[Path | None, typer.Option("--model", help="Exported model folder.")] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Write here (.html or .md); default: Markdown to stdout."),
    ] = None,
) -> None:
    """The model card of an exported model (as served at GET /model/card)."""
    from credit_risk.card import render_card_html, render_card_markdown

    folder = model or get_settings().model_dir
    if output is None:
        typer.echo(render_card_markdown(folder))
        return
    text = (
        render_card_html(folder)
        if output.suffix in (".html", ".htm")
        else render_card_markdown(folder)
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    typer.echo(f"wrote {output}")
