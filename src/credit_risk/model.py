"""Build the one fitted artifact: features -> encoding -> classifier, and its search space."""

from __future__ import annotations

from typing import Any

import optuna
from imblearn.ensemble import BalancedRandomForestClassifier
from imblearn.pipeline import Pipeline
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from credit_risk.config import Family, ProtectedPolicy, Settings
from credit_risk.features import FeatureEngineer, category_levels, output_columns

# Types that MLflow's skops loader must trust to load our artifact (safer than pickle).
SKOPS_TRUSTED_TYPES: list[str] = [
    "credit_risk.features.FeatureEngineer",
    "imblearn.pipeline.Pipeline",
    "imblearn.ensemble._forest.BalancedRandomForestClassifier",
    "imblearn.under_sampling._prototype_selection._random_under_sampler.RandomUnderSampler",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.isotonic.IsotonicRegression",
    "sklearn.utils._bunch.Bunch",
    "builtins.slice",
    "builtins.str",
    "numpy.dtypes.StrDType",
    "pandas.core.arrays.string_.StringDtype",
    "collections.OrderedDict",
    "collections.defaultdict",
    # Gradient boosting (--family gbm): the one type of it skops does not trust by default.
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    # The points scorecard (credit_risk.scorecard): its fitted state is plain JSON data.
    "credit_risk.scorecard.model.PointsScorecard",
]

# imbalanced-learn's defaults expressed in the search space (max_features "sqrt" of the 59
# encoded columns of the default policy is 0.13, of the 71 with protected inputs 0.12; 0.115
# is kept from the first measurements; depth 32 is unbounded for 800 rows): the search starts
# here, so it only moves away from the defaults when cross-validation says so. The number of
# trees is not searched (``Settings.n_estimators``, ``Settings.search_n_estimators``).
DEFAULT_TRIAL: dict[str, Any] = {
    "max_depth": 32,
    "min_samples_leaf": 1,
    "max_features": 0.115,
    "criterion": "gini",
    "sampling_strategy": 1.0,
    "replacement": False,
    "bootstrap": True,
}

# Balanced undersampling trains each tree on a 50/50 sample, so the forest's raw scores
# overstate the 30 % bad rate. A calibrator fitted on out-of-fold scores maps them back, so
# ``probability_bad`` means what it says. Pipeline-level keys in ``params`` (not forest
# hyperparameters): the method (none | sigmoid | isotonic) and its number of folds. Without
# the key the forest is not calibrated: the Optuna search runs so, 4x cheaper (calibration
# refits the forest per fold) and with the same ranking, since AUC and the cost at the
# cost-optimal threshold barely move under a monotone recalibration (benchmarks/calibration.py).
# The training run adds ``Settings.calibration`` (default sigmoid) before its final CV and fit.
CALIBRATION_KEY = "calibration"
CALIBRATION_FOLDS_KEY = "calibration_folds"
CALIBRATION_METHODS = ("none", "sigmoid", "isotonic")
DEFAULT_CALIBRATION = "none"
DEFAULT_CALIBRATION_FOLDS = 3


def build_encoder(drop_protected: bool, scale_numeric: bool = False) -> ColumnTransformer:
    """One-hot encode categoricals over the codebook's full code lists; pass numerics through."""
    numeric, categorical = output_columns(drop_protected)
    encoder = OneHotEncoder(
        categories=[category_levels(c) for c in categorical],
        handle_unknown="ignore",
        sparse_output=False,
    )
    return ColumnTransformer(
        [
            ("numeric", StandardScaler() if scale_numeric else "passthrough", numeric),
            ("categorical", encoder, categorical),
        ],
        verbose_feature_names_out=False,
    )


def build_pipeline(
    params: dict[str, Any], seed: int, drop_protected: bool = True, n_jobs: int = -1
) -> Pipeline:
    """The training pipeline around a (calibrated) BalancedRandomForestClassifier.

    Args:
        params: classifier hyperparameters (see :func:`suggest_params`); empty = library
            defaults. Optional pipeline-level keys: ``calibration`` (none | sigmoid |
            isotonic, default :data:`DEFAULT_CALIBRATION`) and ``calibration_folds``.
        seed: random state of the forest.
        drop_protected: protected-attribute policy (see :class:`FeatureEngineer`); the
            default keeps them out, as ``Settings.protected_policy`` does.
        n_jobs: cores for the forest.
    """
    forest_params = {
        k: v for k, v in params.items() if k not in (CALIBRATION_KEY, CALIBRATION_FOLDS_KEY)
    }
    method = str(params.get(CALIBRATION_KEY, DEFAULT_CALIBRATION))
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration must be one of {CALIBRATION_METHODS}, not {method!r}")
    classifier: Any = BalancedRandomForestClassifier(
        random_state=seed, n_jobs=n_jobs, **forest_params
    )
    folds = int(params.get(CALIBRATION_FOLDS_KEY, DEFAULT_CALIBRATION_FOLDS))
    return calibrated_pipeline(classifier, method, folds, drop_protected)


def calibrated_pipeline(classifier: Any, method: str, folds: int, drop_protected: bool) -> Pipeline:
    """Features -> encoding -> ``classifier``, calibrated by ``method`` (``"none"``: as is).

    ``ensemble=False``: the calibrator learns from ``folds`` out-of-fold scores, then one
    classifier is refitted on all rows, so serving evaluates one model, not one per fold.
    """
    if method != "none":
        classifier = CalibratedClassifierCV(classifier, method=method, ensemble=False, cv=folds)
    return Pipeline(
        [
            ("features", FeatureEngineer(drop_protected=drop_protected)),
            ("encode", build_encoder(drop_protected)),
            ("classifier", classifier),
        ]
    )


def build_model(settings: Settings, params: dict[str, Any]) -> Any:
    """An unfitted model of ``settings.family`` with ``params``, under the settings' policy.

    The forest: :func:`build_pipeline`. The scorecard:
    :func:`credit_risk.scorecard.family.build_scorecard`. Gradient boosting:
    :func:`credit_risk.families.build_gbm_pipeline` (``params``: its classifier's parameters
    over :data:`credit_risk.families.GBM_PARAMS`, and the calibration keys).
    """
    if settings.family is Family.SCORECARD:
        from credit_risk.scorecard.family import build_scorecard

        return build_scorecard(settings, params)
    drop_protected = settings.protected_policy is ProtectedPolicy.EXCLUDE
    if settings.family is Family.GBM:
        from credit_risk.families import build_gbm_pipeline

        booster = {
            k: v for k, v in params.items() if k not in (CALIBRATION_KEY, CALIBRATION_FOLDS_KEY)
        }
        return build_gbm_pipeline(
            settings.seed,
            drop_protected,
            calibration=str(params.get(CALIBRATION_KEY, settings.calibration)),
            calibration_folds=int(params.get(CALIBRATION_FOLDS_KEY, settings.calibration_folds)),
            params=booster,
        )
    return build_pipeline(params, settings.seed, drop_protected, settings.n_jobs)


def forests_of(classifier: Any) -> list[Any]:
    """The fitted forests inside the classifier step (one, or one per calibration fold)."""
    if isinstance(classifier, CalibratedClassifierCV):
        return [c.estimator for c in classifier.calibrated_classifiers_]
    return [classifier]


def classifier_importances(classifier: Any) -> Any:
    """Impurity importances of the classifier step, averaged over its forests."""
    import numpy as np

    return np.mean([forest.feature_importances_ for forest in forests_of(classifier)], axis=0)


def build_logistic_pipeline(seed: int, drop_protected: bool = True) -> Pipeline:
    """Logistic regression baseline on the same features (standardised numerics)."""
    return Pipeline(
        [
            ("features", FeatureEngineer(drop_protected=drop_protected)),
            ("encode", build_encoder(drop_protected, scale_numeric=True)),
            ("classifier", LogisticRegression(C=0.3, max_iter=2000, random_state=seed)),
        ]
    )


def suggest_params(trial: optuna.Trial) -> dict[str, Any]:
    """The search space over BalancedRandomForestClassifier's hyperparameters.

    Centred on the library's defaults (deep trees, small leaves, few features per split),
    which measure well on this data; :data:`DEFAULT_TRIAL` is the search's first trial. The
    number of trees is left out: more trees only lower the variance, so a search would pick
    it by noise; the caller sets it (``Settings.n_estimators``, ``search_n_estimators``).
    """
    params: dict[str, Any] = {
        "max_depth": trial.suggest_int("max_depth", 4, 32, log=True),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 12),
        "max_features": trial.suggest_float("max_features", 0.05, 0.6, log=True),
        "criterion": trial.suggest_categorical("criterion", ["gini", "entropy"]),
        "sampling_strategy": trial.suggest_float("sampling_strategy", 0.5, 1.0),
        "replacement": trial.suggest_categorical("replacement", [True, False]),
        "bootstrap": trial.suggest_categorical("bootstrap", [True, False]),
    }
    return params
