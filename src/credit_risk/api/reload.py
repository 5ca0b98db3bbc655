"""Model changes without downtime: load the champion and the challenger again, swap atomically.

A reload (``POST /admin/reload``, or SIGHUP to the serving process) loads both models from
where the settings point (the exported folders, or registry URIs) in a worker thread while the
old ones go on answering; then each is swapped in with one assignment. A request holds the
model it started with until it is answered (the hot path and the coalescer read
``state.scorer`` once; a batch never mixes two models), so no request fails or waits for the
load. A champion that fails to load leaves the old one serving (and says why); so does a
challenger (the shadow goes on with the old one). A challenger folder that is gone (the
alias was cleared or moved to the champion) stops the shadow.

With several worker processes each loads on its own: SIGHUP to the supervisor makes uvicorn
replace its workers one by one; send SIGHUP to each worker to reload in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from dataclasses import asdict, dataclass
from typing import Any

from credit_risk.api.state import ServiceState, load_scorer
from credit_risk.config import Settings, challenger_folder
from credit_risk.model_folder import METADATA_FILE
from credit_risk.scoring import Scorer

log = logging.getLogger(__name__)


def load_challenger(settings: Settings) -> Scorer | None:
    """The challenger the settings point at: ``challenger_uri`` if set, else the exported
    challenger folder; None when shadow scoring is off or there is no challenger folder.

    Raises:
        Exception: the challenger exists but cannot be loaded (the caller logs it).
    """
    if not settings.shadow:
        return None
    if settings.challenger_uri:
        return Scorer.from_uri(settings.challenger_uri, settings.tracking_uri)
    folder = challenger_folder(settings)
    if not (folder / METADATA_FILE).is_file():
        return None
    return Scorer.from_folder(folder)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


async def load_challenger_into(state: ServiceState) -> str | None:
    """Load the challenger and put it in shadow; the error (logged), if it failed.

    A challenger that is the champion's own version is not scored in shadow.
    """
    try:
        challenger = await asyncio.to_thread(load_challenger, state.settings)
    except Exception as error:
        log.exception("challenger loading failed; no change to the shadow")
        return _describe(error)
    champion = state.scorer
    if challenger is not None and champion is not None and challenger.version == champion.version:
        log.info("the challenger is the champion's version %s: no shadow", champion.version)
        challenger = None
    if challenger is not None:
        log.info("scoring challenger version %s in shadow", challenger.version)
        gc.freeze()  # as the champion's: out of the collector's sight
    state.shadow.challenger = challenger
    return None


@dataclass(frozen=True)
class ModelChange:
    """One model of a reload: the version served before and after, and what went wrong."""

    before: str | None
    after: str | None
    error: str | None = None


@dataclass(frozen=True)
class ReloadResult:
    champion: ModelChange
    challenger: ModelChange
    seconds: float

    @property
    def ok(self) -> bool:
        return self.champion.error is None and self.challenger.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "champion": asdict(self.champion),
            "challenger": asdict(self.challenger),
            "seconds": round(self.seconds, 3),
        }


def _version(scorer: Scorer | None) -> str | None:
    return None if scorer is None else scorer.version


async def reload_models(state: ServiceState) -> ReloadResult:
    """Load the champion, then the challenger, in a thread; swap each in once it is loaded.

    One reload at a time: a second request waits for the first, then loads again.
    """
    async with state.reload_lock:
        started = time.perf_counter()
        champion_before = _version(state.scorer)
        challenger_before = _version(state.shadow.challenger)
        champion_error = None
        try:
            champion = await asyncio.to_thread(load_scorer, state.settings)
        except Exception as error:
            log.exception("reload: the champion failed to load; still serving the old one")
            champion_error = _describe(error)
        else:
            state.scorer = champion  # the swap: requests from now on get the new model
            state.load_error, state.loading = None, False
        challenger_error = await load_challenger_into(state)
        # The new models' objects out of the collector's sight, as at start-up; no collection
        # here (a full one would stall the requests going on meanwhile).
        gc.freeze()
        result = ReloadResult(
            ModelChange(champion_before, _version(state.scorer), champion_error),
            ModelChange(challenger_before, _version(state.shadow.challenger), challenger_error),
            time.perf_counter() - started,
        )
        log.info("reload: %s", result.to_json())
        return result


def install_reload_signal(state: ServiceState) -> bool:
    """Reload on SIGHUP in this process. False where signals cannot be handled (not the main
    thread, e.g. a test client's app, or no SIGHUP on this platform)."""
    hangup = getattr(signal, "SIGHUP", None)
    if hangup is None:
        return False
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[ReloadResult]] = set()

    def on_hangup() -> None:
        log.info("SIGHUP: reloading the models")
        task = loop.create_task(reload_models(state))
        tasks.add(task)  # held until done (the loop keeps only weak references)
        task.add_done_callback(tasks.discard)

    try:
        loop.add_signal_handler(hangup, on_hangup)
    except (RuntimeError, ValueError):  # not the main thread
        return False
    return True


def remove_reload_signal() -> None:
    """Undo :func:`install_reload_signal` (at shutdown)."""
    hangup = getattr(signal, "SIGHUP", None)
    if hangup is not None:
        with contextlib.suppress(RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(hangup)
