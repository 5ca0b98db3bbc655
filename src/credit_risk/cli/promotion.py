"""``credit-risk promote``: move the champion or challenger alias to a registered version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from credit_risk.cli.core import setup_logging
from credit_risk.config import get_settings


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
