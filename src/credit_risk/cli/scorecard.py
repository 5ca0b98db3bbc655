"""``credit-risk scorecard``: the points scorecard's report, points table and SQL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from credit_risk.cli.core import DataOption, SeedOption
from credit_risk.config import (
    Family,
    get_settings,
)
from credit_risk.errors import UserError

scorecard_app = typer.Typer(
    help="The points scorecard: information-value report, points table, SQL.",
    no_args_is_help=True,
)
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
