"""The ``credit-risk`` command line. Thin: each command wires package functions together.

A user's mistake (a bad file, a missing model folder, an invalid setting) ends in one line,
``error: <what is wrong, where, what is accepted>`` on stderr, and exit code 2; ``credit-risk
--verbose <command>`` adds the traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import functools
import inspect
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer
from typer.core import TyperGroup

from credit_risk.config import (
    Family,
    Language,
    Objective,
    ProtectedPolicy,
    Settings,
    ThresholdRule,
    get_settings,
)
from credit_risk.errors import UserError

USER_ERROR_EXIT = 2
_TRACEBACK = "credit_risk.traceback"
# Errors listed from one invalid configuration; the first few say what to fix.
_MAX_SETTING_ERRORS = 3
# OS errors that are the user's environment, not a bug: a path that is not there, not allowed,
# of the wrong kind, or a disk that cannot take the output.
_USER_OS_ERRORS = frozenset(
    {
        errno.ENOENT,
        errno.EACCES,
        errno.EPERM,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.EEXIST,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.ENAMETOOLONG,
    }
)


def _settings_message(error: Any) -> str:
    """One line for an invalid Settings (a flag or a ``CREDIT_RISK_*`` variable)."""
    problems = []
    for item in error.errors(include_url=False)[:_MAX_SETTING_ERRORS]:
        name = ".".join(str(part) for part in item["loc"]) or "(settings)"
        found = repr(item.get("input"))
        found = found if len(found) <= 60 else found[:60] + "..."
        problems.append(
            f"setting {name} (CREDIT_RISK_{name.upper()} or its flag): {item['msg']} "
            f"(found {found})"
        )
    more = error.error_count() - _MAX_SETTING_ERRORS
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


def user_error_message(error: BaseException) -> str | None:
    """The one-line message of an error the user can fix, or None for anything else (a bug).

    User errors: :class:`~credit_risk.errors.UserError` (bad files, same input and output,
    decision-log and store locations), a model folder that cannot be trusted, an invalid
    setting, and OS errors about a path the user gave (missing, not allowed, full disk).
    """
    from pydantic import ValidationError

    from credit_risk.model_folder import ModelFolderError

    if isinstance(error, UserError | ModelFolderError):
        return str(error)
    if isinstance(error, ValidationError) and error.title == "Settings":
        return _settings_message(error)
    if isinstance(error, OSError) and error.errno in _USER_OS_ERRORS:
        where = f"{error.filename}: " if error.filename is not None else ""
        return f"{where}{error.strerror}"
    return None


class UserErrorGroup(TyperGroup):
    """The command group: user errors end in ``error: ...`` and exit code 2, no traceback."""

    def invoke(self, ctx: Any) -> Any:  # a click Context (typer vendors its own click)
        try:
            return super().invoke(ctx)
        except Exception as error:
            message = user_error_message(error)
            if message is None:
                raise
            if ctx.meta.get(_TRACEBACK):
                traceback.print_exc()
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(USER_ERROR_EXIT) from error


app = typer.Typer(
    cls=UserErrorGroup,
    help="Cost-aware credit-risk scoring (Statlog German Credit).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="Also print the traceback of an error (credit-risk --verbose predict ...).",
        ),
    ] = False,
) -> None:
    """Cost-aware credit-risk scoring (Statlog German Credit)."""
    ctx.meta[_TRACEBACK] = verbose


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
    with_outcomes: Annotated[
        bool | None,
        typer.Option(
            "--with-outcomes/--without-outcomes",
            help="Also train on the decision log's labelled decisions (logged inputs with "
            "realised outcomes); default: CREDIT_RISK_TRAIN_WITH_OUTCOMES.",
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
            train_with_outcomes=self.with_outcomes,
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
    family: Annotated[
        Family | None,
        typer.Option(
            "--family",
            help="forest: the tuned balanced random forest (default); scorecard: a points "
            "scorecard (not tuned; --trials is ignored).",
        ),
    ] = None,
    verbose: VerboseOption = True,
) -> None:
    """Tune, train, evaluate, log to MLflow, register, gate and export a model."""
    from credit_risk.train import result_summary
    from credit_risk.train import train as run_training

    _logging(verbose)
    settings = flags.settings(threshold_rule=threshold_rule, family=family)
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
    lang: Annotated[
        Language | None, typer.Option("--lang", help="Reason texts (default: setting).")
    ] = None,
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
    """Score a file of applicants, streaming, into a CSV (probability, class, decision and a
    rejection's reason codes and texts).

    The output is written beside its final name and renamed into place once complete; an
    output that is the input (also through a link) is refused before anything is written.
    """
    from tqdm import tqdm

    from credit_risk.data import check_readable
    from credit_risk.files import refuse_same_file
    from credit_risk.scoring import Scorer, predict_file

    folder = model or get_settings().model_dir
    if engine is ScoringEngine.spark:  # any URL Spark reads; the output folder is never replaced
        _predict_with_spark(folder, input, output, spark_master, chunk_rows, progress)
        return
    if spark_master is not None:
        raise typer.BadParameter("only used with --engine spark", param_hint="--spark-master")
    # The cheap checks first: no model load for a file that cannot be scored.
    refuse_same_file(Path(input), Path(output))
    check_readable(Path(input))
    # Light load from the verified fast-path cache when intact (no MLflow, no scikit-learn).
    scorer = Scorer.from_folder(folder, batch=True)
    with tqdm(unit=" rows", disable=not progress, desc="scoring") as bar:
        rows = predict_file(
            scorer,
            Path(input),
            Path(output),
            chunk_rows,
            progress=bar.update,
            language=(lang or get_settings().reason_language).value,
        )
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
    # Folders exported before there were families hold a forest.
    metadata = {"family": Family.FOREST.value, **read_metadata(folder)}
    typer.echo(
        json.dumps(
            {
                k: metadata[k]
                for k in (
                    "model_name",
                    "family",
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
    challenger: Annotated[
        Path | None,
        typer.Option(
            "--challenger",
            help="Exported challenger folder scored in shadow (default: challenger beside "
            "the model folder, when it exists).",
        ),
    ] = None,
) -> None:
    """Serve the API and the web page (uvicorn). SIGHUP or POST /admin/reload reloads the
    champion and the challenger without downtime."""
    import os
    import tempfile

    import uvicorn

    from credit_risk.decision_log import check_log_location

    _logging(False)
    settings = get_settings(
        host=host,
        port=port,
        workers=workers,
        model_dir=model,
        model_uri=model_uri,
        challenger_dir=challenger,
    )
    # Refused here in one line; inside the workers it would be a startup traceback.
    check_log_location(settings.decision_log_url)
    # Worker processes read their settings from the environment: pass the flags on.
    os.environ["CREDIT_RISK_MODEL_DIR"] = str(settings.model_dir)
    if settings.model_uri:
        os.environ["CREDIT_RISK_MODEL_URI"] = settings.model_uri
    if settings.challenger_dir is not None:
        os.environ["CREDIT_RISK_CHALLENGER_DIR"] = str(settings.challenger_dir)
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
    alarm_rate: Annotated[
        float | None,
        typer.Option(
            "--alarm-rate",
            min=0.0,
            max=1.0,
            help="Chance that a window with no drift raises any alarm, in (0, 1) (default 0.05).",
        ),
    ] = None,
    data: DataOption = None,
) -> None:
    """Test recent decisions against each model version's reference; exit 1 on an alarm."""
    from datetime import datetime

    from credit_risk.decision_log import check_log_exists
    from credit_risk.monitor import ReferenceUnavailable, parse_since
    from credit_risk.monitor import monitor as run_monitor

    _logging(False)
    settings = get_settings(decision_log_url=log_url, monitor_alarm_rate=alarm_rate, data_path=data)

    def moment(option: str, value: str | None) -> datetime | None:
        try:
            return parse_since(value)
        except ValueError as error:
            raise UserError(
                f"--{option} {value!r}: expected 7d, 24h, 90m or an ISO date/time "
                "(2025-01-31 or 2025-01-31T12:00)"
            ) from error

    start, end = moment("since", since), moment("until", until)
    # Reading a SQLite log that is not there would create an empty one and report no drift.
    check_log_exists(settings.decision_log_url)
    try:
        result = run_monitor(settings, since=start, until=end, model_dir=model, report=report)
    except ReferenceUnavailable as error:
        raise UserError(str(error)) from error
    typer.echo(result.summary())
    typer.echo(f"report: {result.report_path} (and {result.json_path})")
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
    from credit_risk.files import write_text_atomic

    folder = model or get_settings().model_dir
    if output is None:
        typer.echo(render_card_markdown(folder))
        return
    text = (
        render_card_html(folder)
        if output.suffix in (".html", ".htm")
        else render_card_markdown(folder)
    )
    write_text_atomic(output, text)
    typer.echo(f"wrote {output}")


scorecard_app = typer.Typer(
    help="The points scorecard: information-value report, points table, SQL.",
    no_args_is_help=True,
)
app.add_typer(scorecard_app, name="scorecard")
ModelFolderOption = Annotated[
    Path | None, typer.Option("--model", help="Exported scorecard folder (default: champion).")
]


def _points_table(model: Path | None) -> tuple[Any, float]:
    """The points table and threshold of an exported scorecard folder."""
    from credit_risk.model_folder import METADATA_FILE, read_metadata
    from credit_risk.scorecard.lookup import points_lookup

    folder = model or get_settings().model_dir
    metadata = read_metadata(folder)
    lookup = points_lookup(metadata, folder / METADATA_FILE)
    if lookup is None:
        raise UserError(
            f"{folder} holds a {metadata.get('family', Family.FOREST.value)} model, not a "
            "scorecard; train one with `credit-risk train --family scorecard --output DIR`"
        )
    return lookup.table, float(metadata["threshold"])


@scorecard_app.command("report")
def scorecard_report(
    data: DataOption = None,
    seed: SeedOption = None,
    repeats: Annotated[int, typer.Option("--repeats", min=1)] = 5,
    folds: Annotated[int, typer.Option("--folds", min=2)] = 5,
) -> None:
    """Fit on every row: IV report and points; then repeated-CV cost and ROC AUC."""
    from credit_risk.data import load_training_data
    from credit_risk.scorecard.family import build_scorecard
    from credit_risk.scorecard.report import (
        cross_validate_scorecard,
        format_evaluation,
        format_iv_report,
    )

    settings = get_settings(data_path=data, seed=seed)
    dataset = load_training_data(settings)
    if dataset.target is None:
        raise UserError(f"{settings.data_path}: no class column; the report needs labelled rows")
    model = build_scorecard(settings).fit(dataset.features, dataset.target.to_numpy())
    typer.echo(format_iv_report(model.points_table, len(dataset.features)))
    typer.echo("")
    typer.echo(format_evaluation(cross_validate_scorecard(settings, repeats, folds)))


@scorecard_app.command("table")
def scorecard_table(
    model: ModelFolderOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="CSV to write (default: stdout).")
    ] = None,
) -> None:
    """The exported scorecard's points table as CSV (one row per bin)."""
    from credit_risk.files import write_text_atomic
    from credit_risk.scorecard.report import points_csv

    table, _ = _points_table(model)
    if output is None:
        typer.echo(points_csv(table), nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output, points_csv(table))
    typer.echo(f"wrote {output}")


@scorecard_app.command("sql")
def scorecard_sql(
    model: ModelFolderOption = None,
    source: Annotated[
        str, typer.Option("--source", help="Table of applicants (columns: codebook names).")
    ] = "applicants",
    expression: Annotated[
        bool, typer.Option("--expression", help="Only the points expression, not a query.")
    ] = False,
) -> None:
    """SQL that scores a table: points (one CASE per attribute), decision, probability."""
    from credit_risk.scorecard.sql import points_sql, score_query

    table, threshold = _points_table(model)
    typer.echo(points_sql(table) if expression else score_query(table, source, threshold) + ";")


# --- reason codes (adverse-action reasons; see credit_risk.reasons) ---


@app.command()
def reasons(
    model: Annotated[Path | None, typer.Option("--model", help="Exported model folder.")] = None,
    lang: Annotated[Language, typer.Option("--lang", help="Language of the texts.")] = Language.EN,
    as_json: Annotated[bool, typer.Option("--json", help="The whole table as JSON.")] = False,
) -> None:
    """Print the reason codes an exported model's rejections can cite (as GET /reasons)."""
    import json

    from credit_risk.model_folder import ModelFolderError, load_reason_codes, read_metadata
    from credit_risk.reasons import UNIT_LOG_ODDS, UNIT_MEANING, UNIT_POINTS

    folder = model or get_settings().model_dir
    try:
        metadata = read_metadata(folder)
        codes = load_reason_codes(folder, metadata)
    except ModelFolderError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    if as_json:
        typer.echo(json.dumps(codes.to_json(), indent=1, ensure_ascii=False))
        return
    family = metadata.get("family", Family.FOREST.value)
    unit = UNIT_POINTS if family == Family.SCORECARD else UNIT_LOG_ODDS
    typer.echo(
        f"reason codes version {codes.version} ({folder}, a {family} model: reasons ranked by "
        f"{UNIT_MEANING[unit]}); protected attributes: never"
    )
    for code in codes.codes:
        typer.echo(f"{code.code:<9} {code.condition_text:<42} {code.text[lang.value]}")


# --- realised outcomes and performance (issue 13) ---

LogUrlOption = Annotated[
    str | None, typer.Option("--log-url", help="Decision-log database URL (default: settings).")
]

outcomes_app = typer.Typer(
    help="Realised outcomes of logged decisions (good or bad, observed after the decision).",
    no_args_is_help=True,
)
app.add_typer(outcomes_app, name="outcomes")


@outcomes_app.command("import")
def outcomes_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with a header: request_id, outcome (good/bad or 1/2), observed_at "
            "(ISO date or date-time, UTC when no offset)."
        ),
    ],
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Overwrite a different stored outcome instead of refusing the file."
        ),
    ] = False,
    log_url: LogUrlOption = None,
) -> None:
    """Record the outcomes of a file: all of them or, on any problem, none (exit 2)."""
    import sqlalchemy as sa

    from credit_risk.decision_log import SchemaVersionError
    from credit_risk.outcomes import OutcomeError, import_outcomes

    _logging(False)
    settings = get_settings(decision_log_url=log_url)
    try:
        result = import_outcomes(settings.decision_log_url, file, replace)
    except (OutcomeError, SchemaVersionError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    except sa.exc.OperationalError as error:
        typer.echo(f"error: cannot write the decision log: {error.orig}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"{file}: {len(result.statuses)} outcome(s): {result.summary()}")


def _moment_option(value: str | None, option: str) -> Any:
    """A ``--since``/``--until`` value: 30d, 24h, 90m or an ISO date/time (UTC when naive)."""
    from credit_risk.monitor import parse_since

    try:
        return parse_since(value)
    except ValueError as error:
        raise typer.BadParameter(
            f"{value!r} is not a duration (30d, 24h, 90m) or an ISO date/time", param_hint=option
        ) from error


@app.command()
def performance(
    since: Annotated[
        str | None,
        typer.Option("--since", help="Decisions since: 30d, 24h, 90m or an ISO date/time."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Decisions before: an ISO date/time (or 7d).")
    ] = None,
    by: Annotated[
        str, typer.Option("--by", help="One window per: month (UTC) or version (model).")
    ] = "month",
    log_url: LogUrlOption = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="HTML report to write (default: settings).")
    ] = None,
    resamples: Annotated[
        int | None,
        typer.Option("--resamples", min=0, help="Bootstrap resamples per window (0: none)."),
    ] = None,
    seed: SeedOption = None,
) -> None:
    """Realised performance of the logged decisions that have an outcome, by window."""
    import sqlalchemy as sa

    from credit_risk.performance import By
    from credit_risk.performance import performance as run_performance

    if by not in tuple(By):
        raise typer.BadParameter(f"{by!r} is not month or version", param_hint="--by")
    _logging(False)
    settings = get_settings(
        decision_log_url=log_url, performance_bootstrap_resamples=resamples, seed=seed
    )
    window = (_moment_option(since, "--since"), _moment_option(until, "--until"))
    try:
        result = run_performance(settings, *window, by=By(by), report=report)
    except sa.exc.OperationalError as error:
        typer.echo(f"error: cannot read the decision log: {error.orig}", err=True)
        raise typer.Exit(2) from error
    typer.echo(result.table())
    typer.echo(f"report: {result.report_path}")


# --- model changes: aliases, shadow challenger (issue 14) ---


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="The registered version number, e.g. 3.")],
    alias: Annotated[
        str,
        typer.Option(
            "--alias", help="champion (serves the answers) or challenger (scored in shadow)."
        ),
    ],
    model: Annotated[
        Path | None,
        typer.Option("--model", help="The champion's folder (the challenger's is beside it)."),
    ] = None,
    export: Annotated[
        bool, typer.Option("--export/--no-export", help="Export the version to its folder.")
    ] = True,
) -> None:
    """Move the champion or challenger alias to a version, print the gate's evidence stored on
    it, and export it where the service loads it (then POST /admin/reload or SIGHUP)."""
    from credit_risk.promotion import Alias
    from credit_risk.promotion import promote as move_alias

    if alias not in tuple(Alias):
        raise typer.BadParameter(f"{alias!r} is not champion or challenger", param_hint="--alias")
    _logging(False)
    settings = get_settings(model_dir=model)
    result = move_alias(settings, Alias(alias), version, export)
    typer.echo(result.text(settings.registered_model_name))


shadow_app = typer.Typer(
    help="The shadow challenger: its decisions beside the champion's, from the decision log.",
    no_args_is_help=True,
)
app.add_typer(shadow_app, name="shadow")


@shadow_app.command("report")
def shadow_report(
    since: Annotated[
        str | None,
        typer.Option("--since", help="Decisions since: 30d, 24h, 90m or an ISO date/time."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Decisions before: an ISO date/time (or 7d).")
    ] = None,
    log_url: LogUrlOption = None,
    resamples: Annotated[
        int | None,
        typer.Option("--resamples", min=0, help="Bootstrap resamples (0: no intervals)."),
    ] = None,
    seed: SeedOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
) -> None:
    """Agreement, score differences and, where outcomes exist, the realised comparison of the
    challenger's shadow decisions with the champion's."""
    import sqlalchemy as sa

    from credit_risk.decision_log import check_log_exists
    from credit_risk.shadow import shadow_report as build_report

    _logging(False)
    settings = get_settings(
        decision_log_url=log_url, performance_bootstrap_resamples=resamples, seed=seed
    )
    window = (_moment_option(since, "--since"), _moment_option(until, "--until"))
    check_log_exists(settings.decision_log_url)
    try:
        report = build_report(settings, *window)
    except sa.exc.OperationalError as error:
        typer.echo(f"error: cannot read the decision log: {error.orig}", err=True)
        raise typer.Exit(2) from error
    typer.echo(report.to_json() if as_json else report.text())


if __name__ == "__main__":
    app()
