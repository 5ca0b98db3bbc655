"""``credit-risk flow``: the Prefect training flow run once, the monitor-and-retrain flow,
the schedule.
"""

from __future__ import annotations

from typing import Annotated

import typer

from credit_risk.cli.core import OutputOption, TrainingFlags, setup_logging, training_flags
from credit_risk.config import get_settings

flow_app = typer.Typer(
    help="Prefect training flow: run once or serve on a schedule.", no_args_is_help=True
)


@flow_app.command("run")
@training_flags
def flow_run(flags: TrainingFlags, output: OutputOption = None) -> None:
    """Run the training flow once (a temporary Prefect server starts if none is configured)."""
    import json
    import os

    # Prefect's temporary server gives up after 20 s by default, too short on a busy machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from credit_risk.flows import training_flow

    setup_logging(True)
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

    setup_logging(True)
    result = monitor_flow(get_settings(), since=since)
    typer.echo(json.dumps(result, indent=2, default=str))


@flow_app.command("serve")
def flow_serve(
    cron: Annotated[str, typer.Option("--cron", help="Schedule (cron, UTC).")] = "0 3 * * 1",
    name: Annotated[str, typer.Option("--name", help="Deployment name.")] = "weekly-retraining",
) -> None:
    """Serve the scheduled retraining deployment from this process (needs a Prefect server)."""
    from credit_risk.flows import serve_weekly

    setup_logging(True)
    serve_weekly(cron, name)
