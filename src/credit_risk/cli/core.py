"""The command group: user errors in one line (exit 2), logging, the options commands share,
the training flags.
"""

from __future__ import annotations

import errno
import functools
import inspect
import logging
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer
from typer.core import TyperGroup

from credit_risk.config import (
    Objective,
    ProtectedPolicy,
    Settings,
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


def setup_logging(verbose: bool) -> None:
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


LogUrlOption = Annotated[
    str | None, typer.Option("--log-url", help="Decision-log database URL (default: settings).")
]
ModelOption = Annotated[Path | None, typer.Option("--model", help="Exported model folder.")]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="Decisions since: 30d, 24h, 90m or an ISO date/time."),
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="Decisions before: an ISO date/time (or 7d).")
]


@contextmanager
def decision_log_access(action: str) -> Iterator[None]:
    """A decision log that cannot be read or written (``action``): one line and exit 2."""
    import sqlalchemy as sa

    try:
        yield
    except sa.exc.OperationalError as error:
        typer.echo(f"error: cannot {action} the decision log: {error.orig}", err=True)
        raise typer.Exit(2) from error


def moment_option(value: str | None, option: str) -> Any:
    """A ``--since``/``--until`` value: 30d, 24h, 90m or an ISO date/time (UTC when naive)."""
    from credit_risk.monitor import parse_since

    try:
        return parse_since(value)
    except ValueError as error:
        raise typer.BadParameter(
            f"{value!r} is not a duration (30d, 24h, 90m) or an ISO date/time", param_hint=option
        ) from error
