"""What the running service holds: settings, the loaded model, the decision log, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from credit_risk.api.coalesce import Coalescer
from credit_risk.api.metrics import ServiceMetrics
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

    def __post_init__(self) -> None:
        self.coalescer = Coalescer(self.metrics)


def load_scorer(settings: Settings) -> Scorer:
    """The model the settings point at: a registry URI if set, else the exported folder."""
    if settings.model_uri:
        return Scorer.from_uri(settings.model_uri, settings.tracking_uri)
    return Scorer.from_folder(settings.model_dir)
