"""One typed Settings object for the whole project.

Every setting can come from an environment variable with the ``CREDIT_RISK_`` prefix
(``CREDIT_RISK_TRIALS=50``) or from a CLI flag. Nothing happens at import time: call
:func:`get_settings` where settings are needed.
"""

from __future__ import annotations

import os
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Objective(StrEnum):
    """What the hyperparameter search optimises."""

    COST = "cost"
    RECALL = "recall"
    AUC = "auc"


class ThresholdRule(StrEnum):
    """How the cost and AUC objectives set the decision threshold on calibrated probabilities.

    ``bayes``: reject when the probability of bad is at least
    ``cost_good_rejected / (cost_good_rejected + cost_bad_accepted)`` (1/6 for german.doc's
    5:1 matrix), the decision that minimises the expected cost when the probability is
    calibrated. ``cross_validated``: the threshold that minimised the cost on the training
    split's out-of-fold predictions (noisier: on 800 rows it moves with a handful of applicants).
    """

    BAYES = "bayes"
    CROSS_VALIDATED = "cross_validated"


class FitRows(StrEnum):
    """Which rows the model a training run registers and exports is fitted on.

    ``all``: the run evaluates the recipe (hyperparameters, threshold) fitted on its training
    split against its test split, then refits the same recipe on every row it read and exports
    that model; the test figures are the recipe's, not the refitted model's (it has no held-out
    rows). The threshold is the run's: the cost matrix's constant under the Bayes rule; under
    ``cross_validated`` the one chosen on the training split's out-of-fold predictions (the
    threshold the test split checked), not re-chosen for the refit. Labelled decisions held out
    of time for the promotion gate (``outcomes_holdout_fraction``) stay out. ``split``: the
    model fitted on the training split is exported (its test figures are its own; the test
    split's rows are never trained on).
    """

    ALL = "all"
    SPLIT = "split"


class ProtectedPolicy(StrEnum):
    """Whether protected attributes (personal status and sex, age, foreign worker, and what is
    derived from them) are model inputs.

    ``exclude``, the default, keeps them for the fairness audit only; ``include`` is an
    explicit opt-in (research, measuring what the default costs).
    """

    INCLUDE = "include"
    EXCLUDE = "exclude"


class Family(StrEnum):
    """The kind of model a training run fits.

    ``forest``: the tuned, calibrated balanced random forest. ``scorecard``: a points
    scorecard (monotone binning, logistic regression on weight of evidence, integer points;
    :mod:`credit_risk.scorecard`). ``gbm``: gradient boosting
    (:func:`credit_risk.families.build_gbm_pipeline`: fixed small parameters, not tuned,
    class-weighted, calibrated like the forest).
    """

    FOREST = "forest"
    SCORECARD = "scorecard"
    GBM = "gbm"


class Language(StrEnum):
    """Languages of the reason texts (the reason-code table has each)."""

    EN = "en"
    ES = "es"


class Names(StrEnum):
    """Names of MLflow objects, defined once."""

    EXPERIMENT = "german-credit-risk"
    REGISTERED_MODEL = "german-credit-risk"
    CHAMPION_ALIAS = "champion"
    CHALLENGER_ALIAS = "challenger"


_PLACEHOLDER_SECRETS = frozenset(
    {"changethis", "changeme", "secret", "password", "apikey", "api-key", "test", "xxx"}
)

DEFAULT_DATA = Path("data/raw/german.data")
GERMAN_DATA_SHA256 = "b21f3d81db8071257d5ff1deaeba1fd4303b62712e6fcc9715c7a86202cb5871"


class Settings(BaseSettings):
    """All configuration. Environment prefix ``CREDIT_RISK_``."""

    model_config = SettingsConfigDict(env_prefix="CREDIT_RISK_", extra="ignore")

    data_path: Path = DEFAULT_DATA
    seed: int = 42
    test_size: float = Field(0.2, gt=0, lt=1)
    # Rows the exported model is fitted on (FitRows); `all` measured in README ("Training").
    fit_rows: FitRows = FitRows.ALL
    cv_folds: int = Field(5, ge=2)
    trials: int = Field(15, ge=0)  # the quality benchmark measures 15 (README)
    objective: Objective = Objective.COST
    # Measured in README ("Model quality"); the recall objective keeps the seed's 0.5 either way.
    threshold_rule: ThresholdRule = ThresholdRule.BAYES
    # What Optuna trials score; None = the objective, except that the cost objective under the
    # Bayes rule searches by ROC AUC (see credit_risk.tune.search_objective).
    search_objective: Objective | None = None
    # ECOA/Regulation B forbids sex, marital status and national origin (foreign worker is a
    # proxy for it) as inputs, and allows age only where applicants aged 62 and over are never
    # disfavoured, which 38 such applicants in the data cannot establish: all are out.
    protected_policy: ProtectedPolicy = ProtectedPolicy.EXCLUDE
    # Cost matrix from german.doc: a bad applicant accepted costs 5, a good one rejected 1.
    cost_bad_accepted: float = Field(5.0, ge=0)
    cost_good_rejected: float = Field(1.0, ge=0)
    # The population's bad rate. The Statlog sample over-represents bad credits (30 %); with a
    # rate here the Bayes threshold applies to probabilities shifted to it (prior shift,
    # credit_risk.evaluate.prior) and the stored threshold is its sample-scale equivalent.
    # None: the population is taken to be like the training rows (nothing changes).
    population_bad_rate: float | None = Field(None, gt=0, lt=1)

    # The model family `credit-risk train` fits (the forest is tuned; scorecard and gbm are not).
    # The points scorecard, by the rule of credit_risk.families.choose_default_family applied
    # to the nested-CV report (`make bench-quality`, README "Model quality"): its expected cost
    # ties with the tuned forest's and the blend's (paired corrected intervals contain 0), and
    # ties go to the simpler family. `--family forest` (CREDIT_RISK_FAMILY=forest) for the forest.
    family: Family = Family.SCORECARD
    # Points scorecard (credit_risk.scorecard): base_points at base_odds goods per bad, pdo
    # points to double the odds; attributes under min_iv are left out; each bin holds at least
    # min_bin_size of the training rows.
    scorecard_base_points: float = 600.0
    scorecard_base_odds: float = Field(50.0, gt=0)
    scorecard_pdo: float = Field(20.0, gt=0)
    scorecard_min_iv: float = Field(0.02, ge=0)
    scorecard_min_bin_size: float = Field(0.05, gt=0, le=0.5)

    # Optuna: None means an in-memory study; any Optuna storage URL otherwise.
    storage: str | None = None
    study_name: str | None = None
    timeout_seconds: float | None = None
    n_jobs: int = Field(-1, description="Cores for the forest (-1 = all).")
    # Trees are a budget, not a hyperparameter: more only lower the variance of the forest's
    # scores (ROC AUC +0.004 from 100 to 500 trees in README's protocol). Trials rank the other
    # hyperparameters with fewer trees, which keeps the search fast; the fitted model uses
    # ``n_estimators`` unless fixed parameters say otherwise.
    n_estimators: int = Field(500, ge=1)
    search_n_estimators: int = Field(200, ge=1)

    # MLflow: MLFLOW_TRACKING_URI (the standard variable) overrides the default.
    tracking_uri: str = Field(
        default_factory=lambda: os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    )
    artifact_location: str = "mlruns"
    experiment_name: str = Names.EXPERIMENT.value
    registered_model_name: str = Names.REGISTERED_MODEL.value
    champion_alias: str = Names.CHAMPION_ALIAS.value
    # The version scored in shadow beside the champion (a training run whose gate kept the
    # champion, or `credit-risk promote --alias challenger`); see credit_risk.api.shadow.
    challenger_alias: str = Names.CHALLENGER_ALIAS.value

    # Where the exported champion lives (self-contained; serving needs no MLflow server).
    model_dir: Path = Path("models/champion")
    # Where the exported challenger lives; None: a folder named "challenger" beside model_dir.
    challenger_dir: Path | None = None

    # Distributed tuning (database storage): a worker silent this long has died; its trial is
    # marked FAIL and retried up to trial_max_retry times with the same parameters.
    heartbeat_seconds: int = Field(10, ge=1)
    heartbeat_grace_seconds: int = Field(30, ge=2)
    trial_max_retry: int = Field(3, ge=0)
    # TPE seed of one tuning worker; None uses ``seed`` (workers sharing a study need their own).
    sampler_seed: int | None = None
    # Prefect: retries of tasks that touch the tracking server or the study database.
    task_retries: int = Field(3, ge=0)
    task_retry_delay_seconds: float = Field(5.0, ge=0)

    # Responsible AI (fairness, calibration, drift): see fairness.py, model.py, monitor.py.
    # Calibration of probability_bad inside the fitted pipeline, on out-of-fold scores.
    calibration: Literal["none", "sigmoid", "isotonic"] = "sigmoid"
    calibration_folds: int = Field(3, ge=2)
    # Optional promotion-gate limits on the fairness audit of the out-of-fold predictions
    # (the training split: 4x the test split's rows, so small groups are less noisy).
    # None = no limit.
    fairness_min_disparate_impact: float | None = Field(None, ge=0, le=1)
    fairness_max_equalized_odds_difference: float | None = Field(None, ge=0, le=1)
    # A limit is checked only when every group of the attribute has this many applicants;
    # otherwise it reports "insufficient data" (neither pass nor fail).
    fairness_min_group_size: int = Field(50, ge=1)
    # Percentile bootstrap intervals of disparate impact and equalized-odds difference
    # (resampling within each group, seeded by ``seed``); 0 resamples = no intervals.
    fairness_bootstrap_resamples: int = Field(1000, ge=0)
    fairness_confidence: float = Field(0.95, gt=0, lt=1)
    # Training data that grows (credit_risk.training_data): also train on the decision log's
    # labelled decisions (logged inputs with realised outcomes), outcomes observed by
    # ``outcomes_until`` (None: when the run starts; the run pins it so every step reads the
    # same rows). The newest ``outcomes_holdout_fraction`` of them (by decision time) is kept
    # out of training, as the out-of-time rows the promotion gate compares the models on.
    train_with_outcomes: bool = False
    outcomes_until: datetime | None = None
    outcomes_holdout_fraction: float = Field(0.25, ge=0, lt=1)
    # The monitor-and-retrain flow retrains only when at least this many rows it would train
    # on are new to the champion (neither trained nor evaluated on; credit_risk.training_data).
    retrain_min_new_rows: int = Field(1, ge=1)
    # Promotion gate (credit_risk.gate): the challenger takes the alias only when the paired
    # bootstrap interval (``gate_confidence``) of its per-applicant improvement in the objective
    # over the champion lies wholly above ``gate_margin`` (units of the objective: cost per
    # applicant, recall or ROC AUC). Out-of-time labelled decisions decide when there are
    # ``gate_min_rows`` of them; otherwise a paired repeated CV of the two recipes on the
    # run's rows (``gate_cv_folds`` x ``gate_cv_repeats``, each recipe refitted per fold).
    gate_margin: float = Field(0.0, ge=0)
    gate_confidence: float = Field(0.95, gt=0.5, lt=1)
    gate_resamples: int = Field(2000, ge=100)
    gate_min_rows: int = Field(100, ge=10)
    gate_cv_folds: int = Field(5, ge=2)
    gate_cv_repeats: int = Field(2, ge=1)
    # Drift monitor (credit_risk.monitor): the chance that a run over windows with no drift
    # alarms at all (one Bonferroni correction over every test of the run, all model versions).
    monitor_alarm_rate: float = Field(0.05, gt=0, lt=1)
    # A model version with fewer decisions in the window is not tested: the tests hold their
    # false-alarm rate at any size, but below this they catch little (README, drift table).
    monitor_min_rows: int = Field(50, ge=1)
    monitor_report: Path = Path("reports/monitor.html")
    # Realised performance (credit_risk.performance): percentile bootstrap intervals over each
    # window's labelled decisions, seeded by ``seed``; 0 resamples = no intervals.
    performance_bootstrap_resamples: int = Field(1000, ge=0)
    performance_confidence: float = Field(0.95, gt=0, lt=1)
    performance_report: Path = Path("reports/performance.html")
    # The service's realised-performance gauges: decisions of the last this many days,
    # recomputed off the request path at most once per refresh interval.
    performance_window_days: int = Field(30, ge=1)
    performance_refresh_seconds: float = Field(60.0, ge=1)

    # Serving (issue 3). A registry URI (``models:/<name>@champion``) wins over ``model_dir``.
    model_uri: str | None = Field(
        None, description="Serve this MLflow model URI instead of the exported folder."
    )
    api_key: str | None = Field(
        None, description="When set, /predict routes require it in the X-API-Key header."
    )
    # Shadow challenger (credit_risk.api.shadow): score every request with the challenger too,
    # after the answer, and log its decision beside the champion's. A registry URI
    # (``models:/<name>@challenger``) wins over the challenger folder.
    shadow: bool = True
    challenger_uri: str | None = None
    # Applicants waiting for shadow scoring beyond which new ones are dropped (and counted):
    # a challenger that cannot keep up must not grow the service's memory.
    shadow_max_pending: int = Field(100_000, ge=1)
    # Pause between two shadow rounds: each round scores everything queued as one batch and
    # commits it in one transaction, so the decisions' commits meet few shadow commits.
    shadow_interval_seconds: float = Field(0.05, ge=0)
    cors_origins: list[str] = Field(default_factory=list)
    max_batch: int = Field(1000, ge=1, le=100_000)
    # Larger request bodies get a 413 before they are parsed. None: twice the largest valid
    # batch of max_batch applicants, plus 64 KiB (credit_risk.api.body.default_body_limit).
    max_body_bytes: int | None = Field(None, ge=1024)
    # Problems listed in a 422; further ones are only counted (omitted_errors).
    max_reported_errors: int = Field(50, ge=1, le=10_000)
    decision_log_url: str = "sqlite:///decisions.db"
    # Language of the reason texts when a request does not ask (``?lang=en|es``).
    reason_language: Language = Language.EN
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1)

    @field_validator("api_key")
    @classmethod
    def _refuse_placeholder_key(cls, value: str | None) -> str | None:
        if value is not None and (value.strip().lower() in _PLACEHOLDER_SECRETS or len(value) < 12):
            raise ValueError(
                "api_key is a placeholder or shorter than 12 characters; "
                "set a real secret or leave it unset"
            )
        return value or None


def challenger_folder(settings: Settings) -> Path:
    """The exported challenger's folder: ``challenger_dir``, or ``challenger`` beside the
    champion's ``model_dir``."""
    if settings.challenger_dir is not None:
        return settings.challenger_dir
    champion = settings.model_dir
    if not champion.name:  # "." or "/": name it to find what is beside it
        champion = champion.resolve()
    return champion.with_name(Names.CHALLENGER_ALIAS.value)


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, then apply explicit overrides (CLI flags).

    Args:
        overrides: values that win over the environment; ``None`` values are ignored.

    Returns:
        The validated settings.
    """
    clean = {key: value for key, value in overrides.items() if value is not None}
    return Settings(**clean)  # type: ignore[arg-type]
