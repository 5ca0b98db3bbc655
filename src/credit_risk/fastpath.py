"""The compiled fast path: one ONNX graph generated from the fitted forest, with reasons built in.

The fitted pipeline is ``features -> encode -> classifier`` (a random forest). Serving it with
scikit-learn costs milliseconds per request (pandas frames, a joblib pool over the trees), and
exact TreeSHAP costs about 23 ms per row on 300 trees. This module compiles the fitted artifact
into something cheap enough for every request:

- **Encoding.** :class:`RowEncoder` turns validated applicants into the encoded feature matrix
  with numpy. Its column order and one-hot levels are read from the fitted ``encode`` step; the
  derived variables follow :mod:`credit_risk.features`. It is checked against the fitted
  pipeline's own ``features`` + ``encode`` steps whenever a fast path is built or loaded
  (:func:`verify`), and the tests check it on all 1000 rows, so a change to the feature step
  that is not mirrored here disables the fast path instead of skewing decisions.
- **Forest and reasons in one operator.** Each tree's leaves are rewritten as an ONNX
  ``TreeEnsembleRegressor`` with ``1 + n_attributes`` targets: target 0 is the leaf's
  probability of "bad" divided by the number of trees (summing gives the forest's
  ``predict_proba``), and target ``k`` is the leaf's path contribution to attribute ``k``
  (Saabas' decomposition: along the root-to-leaf path each split credits its feature with the
  change in the node's probability of "bad"). Contributions of one-hot and derived columns are
  summed back to the 20 codebook attributes they come from (lineage found by probing the fitted
  feature step, see :func:`attribute_lineage`). One ONNX Runtime call returns the
  probability and every attribute's contribution; they add up exactly:
  ``probability = bias + sum(contributions)``.

:class:`ForestArrays` holds the same trees and per-leaf targets as flat arrays, walked by a
numba kernel (level by level over blocks of rows, several threads for files): about twice as
fast as scikit-learn's own traversal plus a table gather on files, and about three times
cheaper than an ONNX Runtime call on a request's few rows, so it serves both when numba is
available (:attr:`FastPath.small_engine`). It is verified like the graph, and both must pass.

**Cache.** The compiled artifact (graph, forest arrays, encoder layout, calibrators) is written
to ``<model folder>/fastpath/`` only after :func:`verify` passed, with a manifest holding the
verification result and each file's sha256. :func:`load_cached` serves from that cache alone,
without MLflow, scikit-learn or the fitted pipeline, when the manifest matches the model's
metadata, this code and the files; anything else falls back to loading the pipeline, compiling
and verifying again.

skl2onnx's forest converter is not used for the per-request graph: its ``decision_leaf``
output emits one operator per tree (about 1 ms per row on 300 trees) and it cannot carry
per-leaf attributions. The tests check the graph against the scikit-learn pipeline on all 1000
rows (|Δ probability| ≤ 1e-5, identical decisions) and the reasons against SHAP.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import importlib.util
import io
import itertools
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from credit_risk.schema import ATTRIBUTES, FEATURE_NAMES, Kind

log = logging.getLogger(__name__)

FASTPATH_DIR = "fastpath"
GRAPH_FILE = "forest.onnx"
TREES_FILE = "forest.npz"
META_FILE = "fastpath.json"
# Bumped whenever the generated artifact's layout changes, so stale caches are rebuilt.
FORMAT_VERSION = 3
PARITY_TOLERANCE = 1e-5
# Seed of the codebook probe applicants the fast path is verified on.
PROBE_SEED = 7


class FastPathUnavailable(RuntimeError):
    """The fitted pipeline cannot be compiled, or the compiled path disagrees with it."""


# --------------------------------------------------------------------------------------------
# Encoding: validated applicants -> encoded matrix, laid out as the fitted `encode` step.


@dataclass(frozen=True)
class Derivation:
    """The constants of :mod:`credit_risk.features` the derived variables are computed with.

    Read from the feature module when a pipeline is compiled and stored with the compiled
    artifact, so loading a cached fast path does not import the feature step (and with it
    scikit-learn). :func:`verify` checks the result against the fitted feature step.
    """

    sex_by_code: Mapping[str, str]
    marital_by_code: Mapping[str, str]
    age_band_edges: tuple[int, ...]
    age_bands: tuple[str, ...]

    @classmethod
    def from_features(cls) -> Derivation:
        from credit_risk import features

        return cls(
            dict(features.SEX_BY_CODE),
            dict(features.MARITAL_BY_CODE),
            tuple(features.AGE_BAND_EDGES),
            tuple(features.AGE_BANDS),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "sex_by_code": dict(self.sex_by_code),
            "marital_by_code": dict(self.marital_by_code),
            "age_band_edges": list(self.age_band_edges),
            "age_bands": list(self.age_bands),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Derivation:
        return cls(
            dict(data["sex_by_code"]),
            dict(data["marital_by_code"]),
            tuple(int(edge) for edge in data["age_band_edges"]),
            tuple(str(band) for band in data["age_bands"]),
        )


def _derived_columns(
    columns: Mapping[str, np.ndarray], derivation: Derivation
) -> dict[str, np.ndarray]:
    """The derived variables of :func:`credit_risk.features.add_derived_features`, in numpy.

    Checked against the fitted feature step by :func:`verify` (see the module docstring).
    """
    amount = np.asarray(columns["credit_amount"], dtype="float64")
    duration = np.asarray(columns["duration_months"], dtype="float64")
    rate = np.asarray(columns["installment_rate"], dtype="float64")
    status = pd.Series(columns["personal_status_sex"])
    band_index = np.searchsorted(
        derivation.age_band_edges, np.asarray(columns["age_years"]), side="right"
    )
    return {
        "monthly_installment": amount / duration,
        "log_credit_amount": np.log(amount),
        "disposable_income_proxy": amount / duration / rate,
        "has_checking_account": np.asarray(
            pd.Series(columns["checking_account_status"]) != "A14", dtype="int64"
        ),
        "sex": status.map(derivation.sex_by_code),
        "marital_status": status.map(derivation.marital_by_code),
        "age_band": np.asarray(derivation.age_bands, dtype=object)[band_index],
    }


def _derived_row(record: Mapping[str, Any], derivation: Derivation) -> dict[str, Any]:
    """:func:`_derived_columns` for one applicant in plain Python (no array set-up cost)."""
    amount = float(record["credit_amount"])
    duration = float(record["duration_months"])
    status = record["personal_status_sex"]
    return {
        "monthly_installment": amount / duration,
        "log_credit_amount": math.log(amount),
        "disposable_income_proxy": amount / duration / float(record["installment_rate"]),
        "has_checking_account": int(record["checking_account_status"] != "A14"),
        "sex": derivation.sex_by_code.get(status, ""),
        "marital_status": derivation.marital_by_code.get(status, ""),
        "age_band": derivation.age_bands[
            bisect.bisect_right(derivation.age_band_edges, record["age_years"])
        ],
    }


@dataclass(frozen=True)
class EncodedLayout:
    """Where each column of the fitted ``encode`` step's output comes from.

    Attributes:
        numeric: feature-step columns passed through, in output order.
        categorical: feature-step columns one-hot encoded, with their levels, in output order.
        names: the encoded feature names (as the fitted encoder reports them).
        derivation: the constants the derived variables are computed with.
    """

    numeric: tuple[str, ...]
    categorical: tuple[tuple[str, tuple[str, ...]], ...]
    names: tuple[str, ...]
    derivation: Derivation

    @property
    def width(self) -> int:
        return len(self.names)

    def source_column(self, index: int) -> str:
        """The feature-step column that encoded column ``index`` comes from."""
        if index < len(self.numeric):
            return self.numeric[index]
        index -= len(self.numeric)
        for column, levels in self.categorical:
            if index < len(levels):
                return column
            index -= len(levels)
        raise IndexError(index)


def read_layout(pipeline: Any) -> EncodedLayout:
    """Read the encoded layout from a fitted pipeline's ``encode`` step.

    Raises:
        FastPathUnavailable: the encoder is not the passthrough + one-hot layout compiled here.
    """
    encode = pipeline.named_steps["encode"]
    numeric: list[str] = []
    categorical: list[tuple[str, tuple[str, ...]]] = []
    for name, transformer, columns in encode.transformers_:
        if name == "remainder" and transformer == "drop":
            continue
        # A fitted "passthrough" block is an identity FunctionTransformer.
        identity = type(transformer).__name__ == "FunctionTransformer" and (
            transformer.func is None
        )
        if (isinstance(transformer, str) and transformer == "passthrough") or identity:
            numeric.extend(columns)
        elif type(transformer).__name__ == "OneHotEncoder":
            if categorical:
                raise FastPathUnavailable("more than one one-hot block")
            categorical.extend(
                (column, tuple(str(level) for level in levels))
                for column, levels in zip(columns, transformer.categories_, strict=True)
            )
        else:
            raise FastPathUnavailable(
                f"encoder block {name!r} ({type(transformer).__name__}) is not compiled"
            )
    names = tuple(str(n) for n in encode.get_feature_names_out())
    layout = EncodedLayout(tuple(numeric), tuple(categorical), names, Derivation.from_features())
    if layout.width != len(names):
        raise FastPathUnavailable("encoder output width does not match its layout")
    return layout


def _level_index(values: Any, levels: list[str]) -> np.ndarray:
    """Position of each value among ``levels`` (-1 if absent), in C (Arrow) where possible."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        found = pc.index_in(pa.array(values, type=pa.string()), value_set=pa.array(levels))
        return np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    except (ImportError, pa.ArrowException, TypeError):
        return np.asarray(pd.Categorical(values, categories=levels).codes, dtype=np.int64)


class RowEncoder:
    """Validated applicants (codes and integers) -> encoded float32 matrix."""

    # Up to this many records, encode_records loops in Python instead of building columns.
    ROW_LOOP_MAX = 512

    def __init__(self, layout: EncodedLayout) -> None:
        self.layout = layout
        self._offsets: list[tuple[str, int, dict[str, int]]] = []
        offset = len(layout.numeric)
        for column, levels in layout.categorical:
            self._offsets.append((column, offset, {lv: i for i, lv in enumerate(levels)}))
            offset += len(levels)

    def encode_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Encode applicants given as one array per schema attribute.

        Args:
            columns: the 20 attributes, each an array (codes as str, numbers as integers).

        Returns:
            ``(n, width)`` float32 matrix, as the fitted ``encode`` step would produce.
        """
        everything = {**columns, **_derived_columns(columns, self.layout.derivation)}
        n = len(columns[FEATURE_NAMES[0]])
        out = np.zeros((n, self.layout.width), dtype=np.float32)
        for index, column in enumerate(self.layout.numeric):
            out[:, index] = np.asarray(everything[column], dtype=np.float64)
        # One flat scatter per one-hot block (2-D fancy indexing costs several times more).
        flat = out.reshape(-1)
        row_starts = np.arange(n, dtype=np.int64) * self.layout.width
        for column, offset, positions in self._offsets:
            # Hash lookup in C; unknown levels get -1 and encode as all zeros, as
            # OneHotEncoder(handle_unknown="ignore") does.
            level = _level_index(everything[column], list(positions))
            known = level >= 0
            if known.all():
                flat[row_starts + (offset + level)] = 1.0
            else:
                flat[row_starts[known] + (offset + level[known])] = 1.0
        return out

    def encode_frame(self, applicants: pd.DataFrame) -> np.ndarray:
        """Encode a validated frame with the schema's columns."""
        # Series as they are (pandas 3 keeps text in Arrow; converting to objects is slow).
        return self.encode_columns({name: applicants[name] for name in FEATURE_NAMES})

    def encode_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Encode validated applicants given as dicts (the API's request bodies)."""
        if len(records) <= self.ROW_LOOP_MAX:
            # The API's requests (coalesced under load): plain Python, ~7 us a row, beats the
            # column path's fixed ~1.7 ms of array set-up up to several hundred rows.
            out = np.zeros((len(records), self.layout.width), dtype=np.float32)
            derivation = self.layout.derivation
            for row, record in enumerate(records):
                values = {**record, **_derived_row(record, derivation)}
                out[row, : len(self.layout.numeric)] = [values[c] for c in self.layout.numeric]
                for column, offset, positions in self._offsets:
                    position = positions.get(values[column])
                    if position is not None:
                        out[row, offset + position] = 1.0
            return out
        columns = {
            a.name: np.asarray(
                [r[a.name] for r in records],
                dtype=object if a.kind is Kind.CATEGORICAL else np.int64,
            )
            for a in ATTRIBUTES
        }
        return self.encode_columns(columns)


# --------------------------------------------------------------------------------------------
# Attribution lineage: which codebook attributes each encoded column comes from.


def probe_applicants(n: int, seed: int) -> pd.DataFrame:
    """Random applicants drawn from the codebook (every code, numbers across their range)."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for a in ATTRIBUTES:
        if a.kind is Kind.CATEGORICAL:
            data[a.name] = pd.Series(rng.choice(list(a.codes), n), dtype="str")
        else:
            assert a.minimum is not None and a.maximum is not None
            high = min(a.maximum, 20_000) if a.name == "credit_amount" else a.maximum
            data[a.name] = rng.integers(a.minimum, high + 1, n).astype("int64")
    return pd.DataFrame(data)


def attribute_lineage(pipeline: Any, layout: EncodedLayout, seed: int = 0) -> np.ndarray:
    """Map encoded columns to codebook attributes by probing the fitted feature step.

    Each attribute in turn is changed on probe applicants; the feature-step columns that move
    depend on it. An encoded column's contribution is shared equally among the attributes its
    source column depends on (``monthly_installment`` half to amount, half to duration).

    Returns:
        ``(width, 20)`` matrix; row ``i`` sums to 1 (or 0 for a column with no source).
    """
    features = pipeline.named_steps["features"]
    base = probe_applicants(64, seed)
    reference = features.transform(base)
    alternate = probe_applicants(64, seed + 1)
    depends: dict[str, set[int]] = {}
    for k, attribute in enumerate(ATTRIBUTES):
        changed = base.copy()
        changed[attribute.name] = alternate[attribute.name]
        moved = features.transform(changed)
        for column in moved.columns:
            before = reference[column].astype("str").to_numpy()
            after = moved[column].astype("str").to_numpy()
            if (before != after).any():
                depends.setdefault(column, set()).add(k)
    lineage = np.zeros((layout.width, len(ATTRIBUTES)), dtype=np.float64)
    for index in range(layout.width):
        sources = depends.get(layout.source_column(index), set())
        for k in sources:
            lineage[index, k] = 1.0 / len(sources)
    return lineage


# --------------------------------------------------------------------------------------------
# Forest -> one TreeEnsembleRegressor with probability and attribution targets.


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


def build_graph(forests: Sequence[Any], lineage: np.ndarray) -> tuple[bytes, float]:
    """Compile fitted forests into one ONNX ``TreeEnsembleRegressor``.

    Args:
        forests: the pipeline's forests (one, or one per calibrated classifier).
        lineage: ``(width, n_attributes)`` map from encoded columns to attributes.

    Returns:
        The serialised model (input ``X`` float32 ``[n, width]``, output ``Y`` float32
        ``[n, n_forests + n_attributes]``: each forest's probability of "bad", then the
        attributions averaged over forests) and the bias (mean root probability).
    """
    import onnx
    from onnx import TensorProto, helper

    n_forests, n_attributes = len(forests), lineage.shape[1]
    width = lineage.shape[0]
    nodes: dict[str, list[Any]] = {
        key: []
        for key in (
            "treeids",
            "nodeids",
            "featureids",
            "values",
            "modes",
            "truenodeids",
            "falsenodeids",
        )
    }
    targets: dict[str, list[Any]] = {key: [] for key in ("treeids", "nodeids", "ids", "weights")}
    bias = 0.0
    tree_id = 0
    for forest_index, forest in enumerate(forests):
        n_trees = len(forest.estimators_)
        for estimator in forest.estimators_:
            tree = estimator.tree_
            probability, contributions, root = leaf_attributions(tree, lineage)
            bias += root / n_trees / n_forests
            leaf = tree.children_left == -1
            count = tree.node_count
            nodes["treeids"].extend([tree_id] * count)
            nodes["nodeids"].extend(range(count))
            nodes["featureids"].extend(np.where(leaf, 0, tree.feature).tolist())
            nodes["values"].extend(np.where(leaf, 0.0, tree.threshold).tolist())
            nodes["modes"].extend("LEAF" if is_leaf else "BRANCH_LEQ" for is_leaf in leaf)
            nodes["truenodeids"].extend(np.where(leaf, 0, tree.children_left).tolist())
            nodes["falsenodeids"].extend(np.where(leaf, 0, tree.children_right).tolist())
            for node in np.flatnonzero(leaf):
                weights = np.zeros(n_forests + n_attributes)
                weights[forest_index] = probability[node] / n_trees
                weights[n_forests:] = contributions[node] / n_trees / n_forests
                for target in np.flatnonzero(weights):
                    targets["treeids"].append(tree_id)
                    targets["nodeids"].append(int(node))
                    targets["ids"].append(int(target))
                    targets["weights"].append(float(weights[target]))
            tree_id += 1
    n_targets = n_forests + n_attributes
    ensemble = helper.make_node(
        "TreeEnsembleRegressor",
        ["X"],
        ["Y"],
        domain="ai.onnx.ml",
        n_targets=n_targets,
        aggregate_function="SUM",
        post_transform="NONE",
        nodes_treeids=nodes["treeids"],
        nodes_nodeids=nodes["nodeids"],
        nodes_featureids=nodes["featureids"],
        nodes_values=nodes["values"],
        nodes_modes=nodes["modes"],
        nodes_truenodeids=nodes["truenodeids"],
        nodes_falsenodeids=nodes["falsenodeids"],
        nodes_missing_value_tracks_true=[0] * len(nodes["nodeids"]),
        nodes_hitrates=[1.0] * len(nodes["nodeids"]),
        target_treeids=targets["treeids"],
        target_nodeids=targets["nodeids"],
        target_ids=targets["ids"],
        target_weights=targets["weights"],
    )
    graph = helper.make_graph(
        [ensemble],
        "credit_risk_forest",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, n_targets])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    model.producer_name = "credit_risk.fastpath"
    onnx.checker.check_model(model)
    return model.SerializeToString(), bias


# --------------------------------------------------------------------------------------------
# Batch engine: the forest as flat arrays, walked by a compiled kernel (no scikit-learn).


def _breadth_first(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, int]:
    """Node ids in breadth-first order, each node's two children next to each other.

    Returns:
        The old id of each new position, and the tree's depth.
    """
    order = [0]
    depth = np.zeros(len(left), dtype=np.int64)
    position = 0
    while position < len(order):
        node = order[position]
        position += 1
        if left[node] != -1:
            order.extend((int(left[node]), int(right[node])))
            depth[left[node]] = depth[right[node]] = depth[node] + 1
    return np.asarray(order, dtype=np.int64), int(depth.max())


def _round_down_float32(threshold: np.ndarray) -> np.ndarray:
    """float32 thresholds ``t32`` with ``x <= t32`` exactly when ``x <= t`` for float32 ``x``.

    scikit-learn compares float32 features with float64 thresholds; rounding each threshold
    down to the nearest float32 keeps every split, so the leaves are the same.
    """
    t32 = threshold.astype(np.float32)
    above = t32.astype(np.float64) > threshold
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


def _accumulate(
    x: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    child: np.ndarray,
    leaf: np.ndarray,
    values: np.ndarray,
    roots: np.ndarray,
    depth: np.ndarray,
    out: np.ndarray,
    start: int,
    stop: int,
) -> None:
    """Sum every tree's leaf targets for rows ``start:stop`` of ``x`` into ``out``.

    Compiled with numba (see :func:`_kernel`). Blocks of rows walk one tree at a time, one level
    at a time: the rows of a level do not depend on each other, so the processor overlaps their
    memory loads instead of waiting on (and mispredicting) one row's branches; leaves point to
    themselves, so every row takes the tree's depth in steps. Indices are unsigned so that no
    negative-index wrap-around is generated. Sums are float32 in tree order (as verified).
    """
    block = 128
    width = values.shape[1]
    n_out = out.shape[1]
    nodes = np.empty(block, dtype=np.uint32)
    total = np.empty((block, width), dtype=np.float32)
    for low in range(start, stop, block):
        high = min(low + block, stop)
        rows = high - low
        window = x[low:high]
        total[:] = 0
        for tree in range(roots.shape[0]):
            root = roots[tree]
            for i in range(rows):
                nodes[i] = root
            for _ in range(depth[tree]):
                for i in range(rows):
                    node = nodes[i]
                    nodes[i] = child[node] + np.uint32(window[i, feature[node]] > threshold[node])
            for i in range(rows):
                targets = values[leaf[nodes[i]]]
                row_total = total[i]
                for j in range(width):
                    row_total[j] += targets[j]
        for i in range(rows):
            for j in range(n_out):
                out[low + i, j] = total[i, j]


def _accumulate_numpy(
    x: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    child: np.ndarray,
    leaf: np.ndarray,
    values: np.ndarray,
    roots: np.ndarray,
    depth: np.ndarray,
    out: np.ndarray,
    start: int,
    stop: int,
) -> None:
    """:func:`_accumulate` in numpy, for when numba is not installed (same sums, slower)."""
    for low in range(start, stop, 8192):
        high = min(low + 8192, stop)
        window = x[low:high]
        rows = np.arange(high - low)
        total = np.zeros((high - low, values.shape[1]), dtype=np.float32)
        for root, steps in zip(roots, depth, strict=True):
            nodes = np.full(high - low, root, dtype=np.int64)
            for _ in range(steps):
                nodes = child[nodes] + (window[rows, feature[nodes]] > threshold[nodes])
            total += values[leaf[nodes]]
        out[low:high] = total[:, : out.shape[1]]


@functools.cache
def _kernel() -> Callable[..., None]:
    """:func:`_accumulate` compiled once per process (numba's on-disk cache skips the JIT).

    numba caches beside this module, or in the user's cache folder when the install is
    read-only (``NUMBA_CACHE_DIR`` chooses another); with neither writable it compiles
    without caching rather than fail. If numba is missing or cannot compile the kernel, the
    numpy version computes the same sums, slower.
    """
    try:
        import numba
    except ImportError:
        log.warning("numba is not installed: the batch engine runs in numpy (slower)")
        return _accumulate_numpy
    try:
        kernel = numba.njit(_accumulate, cache=True, nogil=True, boundscheck=False)
    except RuntimeError as error:  # "cannot cache function ...: no locator available"
        log.info("numba cannot cache the batch kernel (%s); compiling in memory", error)
        kernel = numba.njit(_accumulate, nogil=True, boundscheck=False)
    # Compile (or load from the cache) now, for the argument types run() passes.
    nodes = np.zeros(1, dtype=np.uint32)
    try:
        kernel(
            np.zeros((1, 1), dtype=np.float32),
            nodes,
            np.full(1, np.inf, dtype=np.float32),
            nodes,
            nodes,
            np.zeros((1, 8), dtype=np.float32),
            nodes,
            nodes,
            np.zeros((1, 1), dtype=np.float32),
            0,
            1,
        )
    except Exception as error:  # numba's errors have no common public base class
        log.warning("numba cannot compile the batch kernel (%s): using numpy (slower)", error)
        return _accumulate_numpy
    return kernel  # type: ignore[return-value]


@dataclass(frozen=True)
class ForestArrays:
    """The compiled forests as flat arrays: what the batch engine walks.

    Nodes of all trees are numbered breadth-first, tree after tree, with a split's two children
    side by side: a row goes from node ``k`` to ``child[k] + (x[feature[k]] > threshold[k])``.
    Leaves point to themselves (threshold +inf) and ``leaf[k]`` is their row in ``values``,
    which holds the same per-leaf targets as the ONNX graph: each forest's probability of "bad"
    divided by its number of trees, then the 20 attribute contributions.
    """

    feature: np.ndarray  # uint32 per node
    threshold: np.ndarray  # float32 per node, rounded down (see _round_down_float32)
    child: np.ndarray  # uint32 per node: left child (right = left + 1), or itself for a leaf
    leaf: np.ndarray  # uint32 per node: row of values for a leaf
    roots: np.ndarray  # uint32 per tree
    depth: np.ndarray  # uint32 per tree
    values: np.ndarray  # float32 (n_leaves, n_targets)

    ARRAYS: ClassVar[tuple[str, ...]] = (
        "feature",
        "threshold",
        "child",
        "leaf",
        "roots",
        "depth",
        "values",
    )
    DTYPES: ClassVar[dict[str, Any]] = {"threshold": np.float32, "values": np.float32}

    @property
    def n_targets(self) -> int:
        return int(self.values.shape[1])

    @functools.cached_property
    def max_feature(self) -> int:
        """The highest encoded column a split reads (a scan of every node: made once)."""
        return int(self.feature.max(initial=0))

    @functools.cached_property
    def padded_values(self) -> np.ndarray:
        """:attr:`values` padded to whole SIMD registers (8 float32): the kernel's adds vectorise.

        Made once: copying the table on every call cost a request ~0.3 ms.
        """
        padded = -(-self.n_targets // 8) * 8
        if padded == self.n_targets:
            return self.values
        values = np.zeros((len(self.values), padded), dtype=np.float32)
        values[:, : self.n_targets] = self.values
        return values

    @classmethod
    def from_forests(cls, forests: Sequence[Any], lineage: np.ndarray) -> ForestArrays:
        """Flatten fitted forests (the same targets as :func:`build_graph`)."""
        n_forests = len(forests)
        n_targets = n_forests + lineage.shape[1]
        parts: dict[str, list[np.ndarray]] = {name: [] for name in cls.ARRAYS}
        offset = n_leaves = 0
        for index, forest in enumerate(forests):
            n_trees = len(forest.estimators_)
            for estimator in forest.estimators_:
                tree = estimator.tree_
                probability, contributions, _ = leaf_attributions(tree, lineage)
                order, depth = _breadth_first(tree.children_left, tree.children_right)
                renumber = np.empty_like(order)
                renumber[order] = np.arange(len(order))
                is_leaf = tree.children_left[order] == -1
                count, leaves = len(order), int(is_leaf.sum())
                own = np.arange(count)
                left = renumber[np.where(is_leaf, 0, tree.children_left[order])]
                parts["child"].append(offset + np.where(is_leaf, own, left))
                parts["feature"].append(np.where(is_leaf, 0, tree.feature[order]))
                threshold = _round_down_float32(tree.threshold[order])
                threshold[is_leaf] = np.inf
                parts["threshold"].append(threshold)
                rows = np.zeros(count, dtype=np.int64)
                rows[is_leaf] = n_leaves + np.arange(leaves)
                parts["leaf"].append(rows)
                table = np.zeros((leaves, n_targets), dtype=np.float32)
                table[:, index] = probability[order][is_leaf] / n_trees
                table[:, n_forests:] = contributions[order][is_leaf] / n_trees / n_forests
                parts["values"].append(table)
                parts["roots"].append(np.array([offset]))
                parts["depth"].append(np.array([depth]))
                offset += count
                n_leaves += leaves
        return cls(
            **{
                name: np.ascontiguousarray(
                    np.concatenate(arrays), dtype=cls.DTYPES.get(name, np.uint32)
                )
                for name, arrays in parts.items()
            }
        )

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **{name: getattr(self, name) for name in self.ARRAYS})
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes) -> ForestArrays:
        """Load saved arrays, checking their types and that every index is in range.

        Raises:
            ValueError: the arrays are malformed (the kernel does not bound-check).
        """
        with np.load(io.BytesIO(payload), allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in cls.ARRAYS}
        for name, array in arrays.items():
            if array.dtype != cls.DTYPES.get(name, np.uint32):
                raise ValueError(f"{name} has dtype {array.dtype}")
        n_nodes, (n_leaves, _) = len(arrays["feature"]), arrays["values"].shape
        if not all(len(arrays[name]) == n_nodes for name in ("threshold", "child", "leaf")):
            raise ValueError("node arrays differ in length")
        if len(arrays["roots"]) != len(arrays["depth"]) or not len(arrays["roots"]):
            raise ValueError("roots and depths differ")
        in_range = (
            arrays["child"].max(initial=0) < n_nodes
            and arrays["roots"].max(initial=0) < n_nodes
            and arrays["leaf"].max(initial=0) < n_leaves
        )
        if not in_range:
            raise ValueError("an index is out of range")
        return cls(**arrays)

    def check_width(self, width: int) -> None:
        """Raises ValueError when a split reads a column beyond the encoded ``width``."""
        if self.max_feature >= width:
            raise ValueError("a split reads a column the encoder does not produce")

    def run(self, encoded: np.ndarray, threads: int) -> np.ndarray:
        """``(n, n_targets)`` float32 sums, as the ONNX graph's output; rows split on threads."""
        from concurrent.futures import ThreadPoolExecutor

        kernel = _kernel()
        encoded = np.ascontiguousarray(encoded, dtype=np.float32)
        self.check_width(encoded.shape[1])  # the kernel does not bound-check
        values = self.padded_values
        out = np.empty((len(encoded), self.n_targets), dtype=np.float32)
        arrays = (self.feature, self.threshold, self.child, self.leaf, values)
        tail = (self.roots, self.depth, out)
        threads = max(1, min(threads, len(encoded) // 1024))
        if threads == 1:
            kernel(encoded, *arrays, *tail, 0, len(encoded))
            return out
        bounds = np.linspace(0, len(encoded), threads + 1).astype(int)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            jobs = [
                pool.submit(kernel, encoded, *arrays, *tail, int(start), int(stop))
                for start, stop in itertools.pairwise(bounds)
            ]
            for job in jobs:
                job.result()
        return out


# --------------------------------------------------------------------------------------------
# The compiled artifact: build, verify, cache, run.


@dataclass
class FastPath:
    """The compiled model: encoder, forest arrays and ONNX graph. ``run`` gives probability and
    reasons.

    Attributes:
        encoder: validated applicants -> encoded matrix.
        forest: the arrays the numba kernel walks (files, and requests when numba compiles).
        bias: mean root probability of "bad" (contributions add up to the raw probability).
        calibrators: each forest's calibration map (None for a bare forest).
        graph: the serialised ONNX graph (requests without numba); its session is made on
            first use.
        pipeline: the fitted pipeline it was compiled from, when loaded (None from the cache).
    """

    encoder: RowEncoder
    forest: ForestArrays
    bias: float
    calibrators: list[dict[str, Any] | None]
    graph: bytes
    pipeline: Any = None
    _session: Any = field(default=None, repr=False)

    # Rows from which ``auto`` uses the batch engine whatever small_engine is (files).
    BATCH_ROWS = 4096

    @functools.cached_property
    def small_engine(self) -> str:
        """The engine ``auto`` picks below :attr:`BATCH_ROWS` rows (requests).

        The numba kernel: ~30 us for one row and ~5 us a row more, where an ONNX Runtime
        call costs ~25 us and ~15 us a row (300 trees here). ONNX Runtime when numba cannot
        compile the kernel (the numpy fallback is made for big batches).
        """
        return "onnx" if _kernel() is _accumulate_numpy else "trees"

    def prepare(self) -> None:
        """Make the per-request engine ready now (kernel loaded, or session created)."""
        if self.small_engine == "onnx":
            self.session  # noqa: B018

    @property
    def session(self) -> Any:
        """The ONNX Runtime session of :attr:`graph` (created on first use)."""
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            # One request is microseconds of work: thread hand-offs would cost more than they
            # save, and the server scales with worker processes instead.
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(
                self.graph, options, providers=["CPUExecutionProvider"]
            )
        return self._session

    def run_raw(
        self, encoded: np.ndarray, engine: str = "auto"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Calibrated probability ``(n,)``, raw forest probability ``(n,)``, contributions.

        Args:
            encoded: the encoded applicants.
            engine: ``onnx`` (ONNX Runtime), ``trees`` (:class:`ForestArrays`) or ``auto``
                (``trees`` from :attr:`BATCH_ROWS` rows, :attr:`small_engine` below).
        """
        if engine == "auto":
            engine = "trees" if len(encoded) >= self.BATCH_ROWS else self.small_engine
        if engine == "trees":
            out = self.forest.run(encoded, os.cpu_count() or 1)
        else:
            (out,) = self.session.run(None, {"X": encoded})
        k = len(self.calibrators)
        raw = out[:, :k].astype(np.float64)
        if k == 1:
            probability = calibrate(raw[:, 0], self.calibrators[0])
        else:
            probability = np.mean(
                [calibrate(raw[:, i], c) for i, c in enumerate(self.calibrators)], axis=0
            )
        return probability, raw.mean(axis=1), out[:, k:]

    def run_encoded(
        self, encoded: np.ndarray, engine: str = "auto"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Probability of "bad" ``(n,)`` and attribute contributions ``(n, 20)``.

        Contributions explain the forests' raw probability (they add up to it with the bias);
        calibration is monotone, so they rank the attributes the same way.
        """
        probability, _, contributions = self.run_raw(encoded, engine)
        return probability, contributions

    def run_records(self, records: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        return self.run_encoded(self.encoder.encode_records(records))

    def run_frame(
        self, applicants: pd.DataFrame, engine: str = "auto"
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.run_encoded(self.encoder.encode_frame(applicants), engine)


def fingerprint(metadata: Mapping[str, Any]) -> str:
    """Identifies the model a cached fast path was built from."""
    key = json.dumps(
        {
            k: metadata.get(k)
            for k in ("run_id", "model_version", "trained_at", "params", "threshold")
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(f"{FORMAT_VERSION}:{key}".encode()).hexdigest()[:16]


def code_fingerprint() -> str:
    """Identifies the code a cached fast path was verified with.

    The sources of the feature step, the codebook and this compiler: when any of them changes,
    a cache verified against the old code is rebuilt and verified again, never trusted.
    """
    digest = hashlib.sha256(str(FORMAT_VERSION).encode())
    for module in ("credit_risk.fastpath", "credit_risk.features", "credit_risk.schema"):
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise FastPathUnavailable(f"cannot read the source of {module}")
        digest.update(Path(spec.origin).read_bytes())
    return digest.hexdigest()[:16]


def verify(
    pipeline: Any, fast: FastPath, applicants: pd.DataFrame, expected: np.ndarray | None = None
) -> float:
    """Check the fast path against the fitted pipeline; return the largest |Δ probability|.

    Args:
        pipeline: the fitted pipeline.
        fast: its compiled fast path.
        applicants: the rows to compare on.
        expected: the pipeline's probabilities on them, when already computed.

    Raises:
        FastPathUnavailable: encodings differ, either engine's probabilities differ by more
            than :data:`PARITY_TOLERANCE`, or contributions do not add up to the probability.
    """
    reference = np.asarray(pipeline[:-1].transform(applicants), dtype=np.float32)
    encoded = fast.encoder.encode_frame(applicants)
    records = applicants.to_dict("records")
    one_by_one = np.vstack([fast.encoder.encode_records([r]) for r in records])
    for candidate in (encoded, one_by_one):
        if not np.allclose(reference, candidate, rtol=1e-6, atol=0):
            raise FastPathUnavailable("the compiled encoder disagrees with the fitted feature step")
    if expected is None:
        expected = pipeline.predict_proba(applicants)[:, 1]
    gap = 0.0
    for engine in ("onnx", "trees"):
        probability, raw, contributions = fast.run_raw(encoded, engine)
        gap = max(gap, float(np.max(np.abs(probability - expected))))
        if gap > PARITY_TOLERANCE:
            raise FastPathUnavailable(f"{engine} probabilities differ by {gap:.2e}")
        closure = np.max(np.abs(fast.bias + contributions.sum(axis=1) - raw))
        if closure > 1e-4:
            raise FastPathUnavailable(f"{engine} contributions do not add up ({closure:.2e})")
    return gap


def compile_pipeline(pipeline: Any) -> FastPath:
    """Generate the fast path (graph, forest arrays, encoder, calibrators) from a pipeline."""
    layout = read_layout(pipeline)
    lineage = attribute_lineage(pipeline, layout)
    found = components(pipeline)
    forests = [forest for forest, _ in found]
    graph, bias = build_graph(forests, lineage)
    return FastPath(
        encoder=RowEncoder(layout),
        forest=ForestArrays.from_forests(forests, lineage),
        bias=bias,
        calibrators=[calibrator for _, calibrator in found],
        graph=graph,
    )


def _write_atomic(path: Path, payload: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(payload)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_cache(folder: Path, fast: FastPath, key: str, verification: Mapping[str, Any]) -> None:
    """Store a verified fast path: graph, forest arrays, then the manifest that vouches for them.

    The manifest (:data:`META_FILE`) is written last and holds each file's sha256, the model and
    code fingerprints and the verification result, so a half-written, stale or edited cache is
    refused by :func:`read_cache`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    layout = fast.encoder.layout
    payloads = {GRAPH_FILE: fast.graph, TREES_FILE: fast.forest.to_bytes()}
    for name, payload in payloads.items():
        _write_atomic(folder / name, payload)
    meta = {
        "format": FORMAT_VERSION,
        "fingerprint": key,
        "code": code_fingerprint(),
        "files": {name: hashlib.sha256(p).hexdigest() for name, p in payloads.items()},
        "bias": fast.bias,
        "calibrators": fast.calibrators,
        "numeric": layout.numeric,
        "categorical": layout.categorical,
        "names": layout.names,
        "derivation": layout.derivation.to_json(),
        "verification": dict(verification),
    }
    _write_atomic(folder / META_FILE, json.dumps(meta, indent=1).encode())


def read_cache(folder: Path, key: str) -> tuple[FastPath, dict[str, Any]] | None:
    """A cached fast path and its manifest, or None when absent, stale or not intact.

    Args:
        folder: the cache folder.
        key: :func:`fingerprint` of the model's metadata.
    """
    try:
        meta = json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    if meta.get("format") != FORMAT_VERSION or meta.get("fingerprint") != key:
        log.info("cached fast path in %s is for another model or format", folder)
        return None
    if meta.get("code") != code_fingerprint():
        log.info("cached fast path in %s was verified with other code", folder)
        return None
    try:
        payloads = {name: (folder / name).read_bytes() for name in (GRAPH_FILE, TREES_FILE)}
        for name, payload in payloads.items():
            if hashlib.sha256(payload).hexdigest() != meta["files"][name]:
                log.warning("cached %s in %s does not match its recorded sha256", name, folder)
                return None
        layout = EncodedLayout(
            tuple(meta["numeric"]),
            tuple((column, tuple(levels)) for column, levels in meta["categorical"]),
            tuple(meta["names"]),
            Derivation.from_json(meta["derivation"]),
        )
        forest = ForestArrays.from_bytes(payloads[TREES_FILE])
        forest.check_width(layout.width)
        fast = FastPath(
            encoder=RowEncoder(layout),
            forest=forest,
            bias=float(meta["bias"]),
            calibrators=meta["calibrators"],
            graph=payloads[GRAPH_FILE],
        )
    except (OSError, KeyError, TypeError, ValueError) as error:
        log.warning("cached fast path in %s is unreadable: %s", folder, error)
        return None
    if len(fast.calibrators) + 20 != fast.forest.n_targets:
        log.warning("cached fast path in %s has inconsistent targets", folder)
        return None
    return fast, meta


def load_cached(folder: Path, metadata: Mapping[str, Any]) -> FastPath | None:
    """The light path: a verified cached fast path, without loading the fitted pipeline.

    Used only when the cache's manifest matches the model (:func:`fingerprint`), the code
    (:func:`code_fingerprint`) and every file's sha256; the batch engine must then reproduce,
    on the same probe applicants, the probabilities the pipeline gave when it was verified.

    Returns:
        The fast path (``pipeline`` None), or None: load the pipeline and build instead.
    """
    found = read_cache(Path(folder), fingerprint(metadata))
    if found is None:
        return None
    fast, meta = found
    try:
        verification = meta["verification"]
        expected = np.asarray(verification["probe_probability"], dtype=np.float64)
        probes = probe_applicants(int(verification["probes"]), int(verification["seed"]))
    except (KeyError, TypeError, ValueError):
        log.warning("cached fast path in %s has no usable verification record", folder)
        return None
    probability, _ = fast.run_frame(probes, engine="trees")
    if probability.shape != expected.shape or (
        np.max(np.abs(probability - expected)) > PARITY_TOLERANCE
    ):
        log.warning("cached fast path in %s no longer reproduces its verification", folder)
        return None
    return fast


def load_or_build(
    pipeline: Any, metadata: Mapping[str, Any], cache_dir: Path | None = None, probes: int = 256
) -> FastPath:
    """The fast path for a fitted pipeline, from ``cache_dir`` or freshly compiled.

    Either way it is verified against the pipeline on codebook probe applicants before use; a
    freshly compiled one is cached only after it passed, with the verification result.

    Args:
        pipeline: the fitted pipeline.
        metadata: the model's metadata (identifies the cache entry).
        cache_dir: where to keep the compiled artifact; None or read-only = do not cache.
        probes: number of random codebook applicants to verify on.

    Raises:
        FastPathUnavailable: the pipeline cannot be compiled or the result disagrees.
    """
    key = fingerprint(metadata)
    found = read_cache(cache_dir, key) if cache_dir is not None else None
    fast = found[0] if found is not None else None
    if fast is not None and fast.encoder.layout != read_layout(pipeline):
        log.info("cached fast path was built for another encoder layout; rebuilding")
        fast = None
    fresh = fast is None
    if fast is None:
        fast = compile_pipeline(pipeline)
    fast.pipeline = pipeline
    applicants = probe_applicants(probes, seed=PROBE_SEED)
    expected = pipeline.predict_proba(applicants)[:, 1]
    gap = verify(pipeline, fast, applicants, expected)
    log.info("fast path ready (max |Δ probability| %.1e on %d probes)", gap, probes)
    if fresh and cache_dir is not None:
        verification = {
            "passed": True,
            "probes": probes,
            "seed": PROBE_SEED,
            "engines": ["onnx", "trees"],
            "tolerance": PARITY_TOLERANCE,
            "max_abs_diff_probability": gap,
            "verified_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "probe_probability": expected.tolist(),
        }
        try:
            write_cache(cache_dir, fast, key, verification)
        except OSError as error:
            log.warning("could not cache the fast path in %s: %s", cache_dir, error)
    return fast


def reference_contributions(pipeline: Any, applicants: pd.DataFrame) -> np.ndarray:
    """The same path contributions computed with scikit-learn (no ONNX): the slow reference.

    Used by the tests, and by :class:`credit_risk.scoring.Scorer` when a pipeline cannot be
    compiled but its classifier is still a forest.

    Returns:
        ``(n, 20)`` contributions per codebook attribute.
    """
    forests = [forest for forest, _ in components(pipeline)]
    lineage = attribute_lineage(pipeline, read_layout(pipeline))
    encoded = np.asarray(pipeline[:-1].transform(applicants), dtype=np.float32)
    total = np.zeros((len(applicants), lineage.shape[1]), dtype=np.float64)
    for forest in forests:
        for estimator in forest.estimators_:
            _, contributions, _ = leaf_attributions(estimator.tree_, lineage)
            total += contributions[estimator.tree_.apply(encoded)] / len(forest.estimators_)
    return total / len(forests)
