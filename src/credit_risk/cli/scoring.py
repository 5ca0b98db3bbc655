"""Scoring and serving commands: ``predict`` (local or Spark), ``info``, ``serve``, ``card``,
``reasons``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from credit_risk.cli.core import ModelOption, setup_logging
from credit_risk.config import (
    Family,
    Language,
    get_settings,
)


class ScoringEngine(StrEnum):
    """Where ``credit-risk predict`` scores: this process, or a Spark job."""

    local = "local"
    spark = "spark"


def predict(
    # Text, not Path: with --engine spark these are URLs (s3a://, hdfs://) that Path would mangle.
    input: Annotated[
        str, typer.Option("--input", help="UCI-format or CSV file (spark: also Parquet, any URL).")
    ],
    output: Annotated[
        str, typer.Option("--output", help="CSV to write (spark: a Parquet or .csv folder).")
    ],
    model: ModelOption = None,
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


def serve(
    host: Annotated[str | None, typer.Option("--host", help="Interface (127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default 8000).")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Worker processes.")
    ] = None,
    model: ModelOption = None,
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

    setup_logging(False)
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


def card(
    model: ModelOption = None,
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


def reasons(
    model: ModelOption = None,
    lang: Annotated[Language, typer.Option("--lang", help="Language of the texts.")] = Language.EN,
    as_json: Annotated[bool, typer.Option("--json", help="The whole table as JSON.")] = False,
) -> None:
    """Print the reason codes an exported model's rejections can cite (as GET /reasons)."""
    import json

    from credit_risk.model_folder import ModelFolderError, load_reason_codes, read_metadata
    from credit_risk.reasons import (
        SUBSTITUTION_MEANING,
        UNIT_LOG_ODDS,
        UNIT_MEANING,
        UNIT_POINTS,
    )

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
    meaning = UNIT_MEANING[unit]
    if family == Family.GBM:
        meaning = SUBSTITUTION_MEANING
    typer.echo(
        f"reason codes version {codes.version} ({folder}, a {family} model: reasons ranked by "
        f"{meaning}); protected attributes: never"
    )
    for code in codes.codes:
        typer.echo(f"{code.code:<9} {code.condition_text:<42} {code.text[lang.value]}")
