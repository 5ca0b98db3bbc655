"""Model changes: ``promote`` (champion or challenger alias) and ``shadow report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from credit_risk.cli.core import (
    LogUrlOption,
    SeedOption,
    SinceOption,
    UntilOption,
    decision_log_access,
    moment_option,
    setup_logging,
)
from credit_risk.config import (
    get_settings,
)


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
    setup_logging(False)
    settings = get_settings(model_dir=model)
    result = move_alias(settings, Alias(alias), version, export)
    typer.echo(result.text(settings.registered_model_name))


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
