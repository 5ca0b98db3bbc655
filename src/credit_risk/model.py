"""Build the one fitted artifact: features -> encoding -> classifier, and its search space."""

from __future__ import annotations

from typing import Any

import optuna
from imblearn.ensemble import BalancedRandomForestClassifier
from imblearn.pipeline import Pipeline
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder, StandardScaler

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
]

# The seed's recipe: BalancedRandomForest with imbalanced-learn's defaults.
SEED_PARAMS: dict[str, Any] = {}


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
    params: dict[str, Any], seed: int, drop_protected: bool = False, n_jobs: int = -1
) -> Pipeline:
    """The training pipeline around a BalancedRandomForestClassifier.

    Args:
        params: classifier hyperparameters (see :func:`suggest_params`); empty = library defaults.
        seed: random state of the forest.
        drop_protected: protected-attribute policy (see :class:`FeatureEngineer`).
        n_jobs: cores for the forest.
    """
    classifier = BalancedRandomForestClassifier(random_state=seed, n_jobs=n_jobs, **params)
    return Pipeline(
        [
            ("features", FeatureEngineer(drop_protected=drop_protected)),
            ("encode", build_encoder(drop_protected)),
            ("classifier", classifier),
        ]
    )


def build_logistic_pipeline(seed: int, drop_protected: bool = False) -> Pipeline:
    """Logistic regression baseline on the same features (standardised numerics)."""
    return Pipeline(
        [
            ("features", FeatureEngineer(drop_protected=drop_protected)),
            ("encode", build_encoder(drop_protected, scale_numeric=True)),
            ("classifier", LogisticRegression(C=0.3, max_iter=2000, random_state=seed)),
        ]
    )


def suggest_params(trial: optuna.Trial) -> dict[str, Any]:
    """The search space over BalancedRandomForestClassifier's hyperparameters."""
    params: dict[str, Any] = {
        "n_estimators": trial.suggest_int("n_estimators", 100, 500, step=50),
        "max_depth": trial.suggest_int("max_depth", 3, 20),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 20),
        "max_features": trial.suggest_float("max_features", 0.1, 0.8),
        "criterion": trial.suggest_categorical("criterion", ["gini", "entropy"]),
        "sampling_strategy": trial.suggest_float("sampling_strategy", 0.5, 1.0),
        "replacement": trial.suggest_categorical("replacement", [True, False]),
        "bootstrap": trial.suggest_categorical("bootstrap", [True, False]),
    }
    return params
