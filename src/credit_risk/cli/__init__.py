"""The ``credit-risk`` command line. Thin: each command wires package functions together.

A user's mistake (a bad file, a missing model folder, an invalid setting) ends in one line,
``error: <what is wrong, where, what is accepted>`` on stderr, and exit code 2; ``credit-risk
--verbose <command>`` adds the traceback. Anything else is a bug and keeps its traceback.

One module per command group (:mod:`~credit_risk.cli.core` holds the group itself, its error
handling and the options commands share); the commands are registered here, in the order
``credit-risk --help`` lists them.
"""

from __future__ import annotations

from credit_risk.cli.core import app
from credit_risk.cli.flow import flow_app
from credit_risk.cli.monitoring import monitor, outcomes_app, performance, shadow_app
from credit_risk.cli.promotion import promote
from credit_risk.cli.scorecard import scorecard_app
from credit_risk.cli.scoring import card, info, predict, reasons, serve
from credit_risk.cli.training import evaluate, train, tune

for command in (
    train,
    predict,
    evaluate,
    info,
    tune,
    serve,
    monitor,
    card,
    reasons,
    performance,
    promote,
):
    app.command()(command)
for group, name in (
    (flow_app, "flow"),
    (scorecard_app, "scorecard"),
    (outcomes_app, "outcomes"),
    (shadow_app, "shadow"),
):
    app.add_typer(group, name=name)

__all__ = ["app"]
