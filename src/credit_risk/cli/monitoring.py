"""Watching served decisions: ``monitor`` (drift), ``outcomes import``, ``performance``,
``shadow report`` (the challenger beside the champion).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from credit_risk.cli.core import (
    DataOption,
    LogUrlOption,
    ModelOption,
    SeedOption,
    SinceOption,
    UntilOption,
    decision_log_access,
    moment_option,
    setup_logging,
)
from credit_risk.config import get_settings
from credit_risk.errors import UserError


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
    log_url: LogUrlOption = None,
    model: ModelOption = None,
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

    setup_logging(False)
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


outcomes_app = typer.Typer(
    help="Realised outcomes of logged decisions (good or bad, observed after the decision).",
    no_args_is_help=True,
)


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
    from credit_risk.decision_log import SchemaVersionError
    from credit_risk.outcomes import OutcomeError, import_outcomes

    setup_logging(False)
    settings = get_settings(decision_log_url=log_url)
    with decision_log_access("write"):
        try:
            result = import_outcomes(settings.decision_log_url, file, replace)
        except (OutcomeError, SchemaVersionError) as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from error
    typer.echo(f"{file}: {len(result.statuses)} outcome(s): {result.summary()}")


def performance(
    since: SinceOption = None,
    until: UntilOption = None,
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
    from credit_risk.performance import By
    from credit_risk.performance import performance as run_performance

    if by not in tuple(By):
        raise typer.BadParameter(f"{by!r} is not month or version", param_hint="--by")
    setup_logging(False)
    settings = get_settings(
        decision_log_url=log_url, performance_bootstrap_resamples=resamples, seed=seed
    )
    window = (moment_option(since, "--since"), moment_option(until, "--until"))
    with decision_log_access("read"):
        result = run_performance(settings, *window, by=By(by), report=report)
    typer.echo(result.table())
    typer.echo(f"report: {result.report_path}")


shadow_app = typer.Typer(
    help="The shadow challenger: its decisions beside the champion's, from the decision log.",
    no_args_is_help=True,
)


@shadow_app.command("report")
def shadow_report(
    since: SinceOption = None,
    until: UntilOption = None,
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
    from credit_risk.decision_log import check_log_exists
    from credit_risk.shadow import shadow_report as build_report

    setup_logging(False)
    settings = get_settings(
        decision_log_url=log_url, performance_bootstrap_resamples=resamples, seed=seed
    )
    window = (moment_option(since, "--since"), moment_option(until, "--until"))
    check_log_exists(settings.decision_log_url)
    with decision_log_access("read"):
        report = build_report(settings, *window)
    typer.echo(report.to_json() if as_json else report.text())
