"""What the running service holds: settings, the loaded models, the decision log, metrics."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from credit_risk.api.coalesce import Coalescer
from credit_risk.api.metrics import ServiceMetrics
from credit_risk.api.shadow import ShadowScorer
from credit_risk.config import Settings
from credit_risk.decision_log import DecisionLog
from credit_risk.scoring import Scorer


@dataclass
class ServiceState:
    settings: Settings
    metrics: ServiceMetrics
    scorer: Scorer | None = None
    decision_log: DecisionLog | None = None
    load_error: str | None = None
    loading: bool = True
    coalescer: Coalescer = field(init=False)
    # The challenger scoring in shadow (its ``challenger`` attribute; None: no shadow).
    shadow: ShadowScorer = field(init=False)
    # One reload at a time (credit_risk.api.reload).
    reload_lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        settings = self.settings
        self.shadow = ShadowScorer(
            self.metrics, settings.shadow_max_pending, settings.shadow_interval_seconds
        )
        self.coalescer = Coalescer(self.metrics, after_commit=self.shadow.submit)


def load_scorer(settings: Settings) -> Scorer:
    """The model the settings point at: a registry URI if set, else the exported folder."""
    if settings.model_uri:
        return Scorer.from_uri(settings.model_uri, settings.tracking_uri)
    return Scorer.from_folder(settings.model_dir)
