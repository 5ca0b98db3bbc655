"""The fitted forests, read for compiling: components, calibration maps and per-leaf targets.

:func:`tree_targets` builds the per-leaf target table once; the ONNX graph
(:mod:`credit_risk.fastpath.graph`) and the batch engine's arrays
(:mod:`credit_risk.fastpath.kernel`) are both laid out from it. Each leaf's targets are each
forest's probability of "bad" divided by its number of trees (summing gives the forests'
``predict_proba``), then the leaf's path contribution to each codebook attribute (Saabas'
decomposition: along the root-to-leaf path each split credits its feature with the change in
the node's probability of "bad"), averaged over trees and forests.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from credit_risk.fastpath.errors import FastPathUnavailable


def _check_forest(forest: Any) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    if not isinstance(forest, RandomForestClassifier):
        raise FastPathUnavailable(f"classifier {type(forest).__name__} is not a random forest")
    if list(forest.classes_) != [0, 1]:
        raise FastPathUnavailable(f"unexpected classes {forest.classes_!r}")
    return forest


def components(pipeline: Any) -> list[tuple[Any, dict[str, Any] | None]]:
    """The forests of a fitted pipeline's classifier, each with its calibrator's parameters.

    A bare forest is one component without calibrator. A ``CalibratedClassifierCV`` over
    forests has one component per calibrated classifier (its probabilities are averaged); the
    calibrator's fitted parameters are read so the fast path applies the same map.

    Raises:
        FastPathUnavailable: another classifier or calibration method.
    """
    from sklearn.calibration import CalibratedClassifierCV

    classifier = pipeline.named_steps["classifier"]
    if not isinstance(classifier, CalibratedClassifierCV):
        return [(_check_forest(classifier), None)]
    found: list[tuple[Any, dict[str, Any] | None]] = []
    for calibrated in classifier.calibrated_classifiers_:
        (calibrator,) = calibrated.calibrators
        kind = type(calibrator).__name__
        if kind == "_SigmoidCalibration":
            params: dict[str, Any] = {
                "kind": "sigmoid",
                "a": float(calibrator.a_),
                "b": float(calibrator.b_),
            }
        elif kind == "IsotonicRegression":
            params = {
                "kind": "isotonic",
                "x": calibrator.X_thresholds_.tolist(),
                "y": calibrator.y_thresholds_.tolist(),
            }
        else:
            raise FastPathUnavailable(f"calibrator {kind} is not compiled")
        found.append((_check_forest(calibrated.estimator), params))
    return found


def calibrate(raw: np.ndarray, calibrator: Mapping[str, Any] | None) -> np.ndarray:
    """Apply one component's fitted calibration map to its forest's probabilities."""
    if calibrator is None:
        return raw
    if calibrator["kind"] == "sigmoid":
        return 1.0 / (1.0 + np.exp(calibrator["a"] * raw + calibrator["b"]))
    return np.interp(raw, calibrator["x"], calibrator["y"])


def leaf_attributions(tree: Any, lineage: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-leaf probability of "bad" and path contributions of one fitted tree.

    Args:
        tree: a fitted ``sklearn.tree._tree.Tree``.
        lineage: ``(width, n_attributes)`` map from encoded columns to attributes.

    Returns:
        ``(probability, contributions, bias)``: probability per node, ``(n_nodes,
        n_attributes)`` contributions accumulated from the root, and the root's probability.
    """
    value = tree.value[:, 0, :]
    probability = value[:, 1] / value.sum(axis=1)
    n_nodes = tree.node_count
    contributions = np.zeros((n_nodes, lineage.shape[1]), dtype=np.float64)
    left, right, feature = tree.children_left, tree.children_right, tree.feature
    # Node ids are in depth-first pre-order: a parent always comes before its children.
    for node in range(n_nodes):
        if left[node] == -1:
            continue
        credit = lineage[feature[node]]
        for child in (left[node], right[node]):
            step = probability[child] - probability[node]
            contributions[child] = contributions[node] + step * credit
    return probability, contributions, float(probability[0])


@dataclass(frozen=True)
class TreeTargets:
    """One tree and what each of its leaves adds to the compiled output.

    Attributes:
        tree: the fitted ``sklearn.tree._tree.Tree``.
        leaves: node ids of its leaves, ascending.
        targets: ``(n_leaves, n_forests + n_attributes)`` float64: the tree's share of its
            forest's probability of "bad" (in that forest's column), then of the attributions.
        bias: the tree's share of the bias (mean root probability over trees and forests).
    """

    tree: Any
    leaves: np.ndarray
    targets: np.ndarray
    bias: float


def tree_targets(forests: Sequence[Any], lineage: np.ndarray) -> Iterator[TreeTargets]:
    """The per-leaf target table of every tree, forest after forest, tree after tree.

    Args:
        forests: the pipeline's forests (one, or one per calibrated classifier).
        lineage: ``(width, n_attributes)`` map from encoded columns to attributes.
    """
    n_forests = len(forests)
    n_targets = n_forests + lineage.shape[1]
    for index, forest in enumerate(forests):
        n_trees = len(forest.estimators_)
        for estimator in forest.estimators_:
            tree = estimator.tree_
            probability, contributions, root = leaf_attributions(tree, lineage)
            leaves = np.flatnonzero(tree.children_left == -1)
            targets = np.zeros((len(leaves), n_targets), dtype=np.float64)
            targets[:, index] = probability[leaves] / n_trees
            targets[:, n_forests:] = contributions[leaves] / n_trees / n_forests
            yield TreeTargets(tree, leaves, targets, root / n_trees / n_forests)
