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
  feature step, see :func:`attribute_lineage`). One ONNX Runtime call per request returns the
  probability and every attribute's contribution; they add up exactly:
  ``probability = bias + sum(contributions)``.

Files of applicants (``credit-risk predict``) go through :class:`LeafTables` instead: the
fitted trees' own Cython traversal finds the leaves (faster than ONNX Runtime's tree operator
on large batches) and the same per-leaf targets are added up; it is verified like the graph.

skl2onnx's forest converter is not used for the per-request graph: its ``decision_leaf``
output emits one operator per tree (about 1 ms per row on 300 trees) and it cannot carry
per-leaf attributions. The tests check the graph against the scikit-learn pipeline on all 1000
rows (|Δ probability| ≤ 1e-5, identical decisions) and the reasons against SHAP.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.features import AGE_BAND_EDGES, AGE_BANDS, MARITAL_BY_CODE, SEX_BY_CODE
from credit_risk.schema import ATTRIBUTES, FEATURE_NAMES, Kind

log = logging.getLogger(__name__)

FASTPATH_DIR = "fastpath"
GRAPH_FILE = "forest.onnx"
META_FILE = "fastpath.json"
# Bumped whenever the generated artifact's layout changes, so stale caches are rebuilt.
FORMAT_VERSION = 2
PARITY_TOLERANCE = 1e-5


class FastPathUnavailable(RuntimeError):
    """The fitted pipeline cannot be compiled, or the compiled path disagrees with it."""


# --------------------------------------------------------------------------------------------
# Encoding: validated applicants -> encoded matrix, laid out as the fitted `encode` step.


def _derived_columns(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The derived variables of :func:`credit_risk.features.add_derived_features`, in numpy.

    Checked against the fitted feature step by :func:`verify` (see the module docstring).
    """
    amount = np.asarray(columns["credit_amount"], dtype="float64")
    duration = np.asarray(columns["duration_months"], dtype="float64")
    rate = np.asarray(columns["installment_rate"], dtype="float64")
    status = pd.Series(columns["personal_status_sex"])
    band_index = np.searchsorted(AGE_BAND_EDGES, np.asarray(columns["age_years"]), side="right")
    return {
        "monthly_installment": amount / duration,
        "log_credit_amount": np.log(amount),
        "disposable_income_proxy": amount / duration / rate,
        "has_checking_account": np.asarray(
            pd.Series(columns["checking_account_status"]) != "A14", dtype="int64"
        ),
        "sex": status.map(SEX_BY_CODE),
        "marital_status": status.map(MARITAL_BY_CODE),
        "age_band": np.asarray(AGE_BANDS, dtype=object)[band_index],
    }


def _derived_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`_derived_columns` for one applicant in plain Python (no array set-up cost)."""
    amount = float(record["credit_amount"])
    duration = float(record["duration_months"])
    status = record["personal_status_sex"]
    return {
        "monthly_installment": amount / duration,
        "log_credit_amount": math.log(amount),
        "disposable_income_proxy": amount / duration / float(record["installment_rate"]),
        "has_checking_account": int(record["checking_account_status"] != "A14"),
        "sex": SEX_BY_CODE.get(status, ""),
        "marital_status": MARITAL_BY_CODE.get(status, ""),
        "age_band": AGE_BANDS[bisect.bisect_right(AGE_BAND_EDGES, record["age_years"])],
    }


@dataclass(frozen=True)
class EncodedLayout:
    """Where each column of the fitted ``encode`` step's output comes from.

    Attributes:
        numeric: feature-step columns passed through, in output order.
        categorical: feature-step columns one-hot encoded, with their levels, in output order.
        names: the encoded feature names (as the fitted encoder reports them).
    """

    numeric: tuple[str, ...]
    categorical: tuple[tuple[str, tuple[str, ...]], ...]
    names: tuple[str, ...]

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
    layout = EncodedLayout(tuple(numeric), tuple(categorical), names)
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
        everything = {**columns, **_derived_columns(columns)}
        n = len(columns[FEATURE_NAMES[0]])
        out = np.zeros((n, self.layout.width), dtype=np.float32)
        for index, column in enumerate(self.layout.numeric):
            out[:, index] = np.asarray(everything[column], dtype=np.float64)
        rows = np.arange(n)
        for column, offset, positions in self._offsets:
            # Hash lookup in C; unknown levels get -1 and encode as all zeros, as
            # OneHotEncoder(handle_unknown="ignore") does.
            level = _level_index(everything[column], list(positions))
            known = level >= 0
            out[rows[known], offset + level[known]] = 1.0
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
            for row, record in enumerate(records):
                values = {**record, **_derived_row(record)}
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
# The compiled artifact: build, verify, cache, run.


class LeafTables:
    """Batch engine: the fitted trees' own traversal (Cython, GIL released) + per-leaf targets.

    For files of applicants, scikit-learn's ``Tree.apply`` finds leaves faster than ONNX
    Runtime's tree operator; each leaf's row of targets (the same numbers the ONNX graph
    carries) is then added up. Rows are split across threads and walked in cache-sized blocks.
    """

    BLOCK_ROWS = 8192

    def __init__(self, pipeline: Any, lineage: np.ndarray) -> None:
        forests = [forest for forest, _ in components(pipeline)]
        n_forests = len(forests)
        self.width = n_forests + lineage.shape[1]
        self.trees: list[Any] = []
        self.tables: list[np.ndarray] = []
        for index, forest in enumerate(forests):
            n_trees = len(forest.estimators_)
            for estimator in forest.estimators_:
                probability, contributions, _ = leaf_attributions(estimator.tree_, lineage)
                table = np.zeros((estimator.tree_.node_count, self.width), dtype=np.float32)
                table[:, index] = probability / n_trees
                table[:, n_forests:] = contributions / n_trees / n_forests
                self.trees.append(estimator.tree_)
                self.tables.append(table)

    def _run_rows(self, encoded: np.ndarray, out: np.ndarray, start: int, stop: int) -> None:
        for low in range(start, stop, self.BLOCK_ROWS):
            high = min(low + self.BLOCK_ROWS, stop)
            block = encoded[low:high]
            # float32 sums of 300 small terms stay within 1e-6 (checked by verify()).
            total = np.zeros((high - low, self.width), dtype=np.float32)
            for tree, table in zip(self.trees, self.tables, strict=True):
                total += table[tree.apply(block)]
            out[low:high] = total

    def run(self, encoded: np.ndarray, threads: int) -> np.ndarray:
        """``(n, n_forests + n_attributes)`` targets, as the ONNX graph's output."""
        from concurrent.futures import ThreadPoolExecutor

        encoded = np.ascontiguousarray(encoded, dtype=np.float32)
        out = np.empty((len(encoded), self.width), dtype=np.float64)
        bounds = np.linspace(0, len(encoded), max(1, threads) + 1).astype(int)
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            jobs = [
                pool.submit(self._run_rows, encoded, out, int(a), int(b))
                for a, b in itertools.pairwise(bounds)
            ]
            for job in jobs:
                job.result()
        return out


@dataclass
class FastPath:
    """The compiled model: encoder + ONNX session. ``run`` returns probability and reasons."""

    encoder: RowEncoder
    session: Any
    bias: float
    calibrators: list[dict[str, Any] | None]
    graph: bytes = b""
    pipeline: Any = None
    _tables: LeafTables | None = None

    @classmethod
    def from_bytes(
        cls,
        graph: bytes,
        layout: EncodedLayout,
        bias: float,
        calibrators: list[dict[str, Any] | None],
    ) -> FastPath:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One request is microseconds of work: thread hand-offs would cost more than they save,
        # and the server scales with worker processes instead.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        return cls(
            encoder=RowEncoder(layout),
            session=session,
            bias=bias,
            calibrators=calibrators,
            graph=graph,
        )

    # Rows from which a call uses the batch engine (files, big batches).
    BATCH_ROWS = 4096

    def _batch_engine(self) -> LeafTables | None:
        if self._tables is None and self.pipeline is not None:
            lineage = attribute_lineage(self.pipeline, self.encoder.layout)
            self._tables = LeafTables(self.pipeline, lineage)
        return self._tables

    def run_raw(
        self, encoded: np.ndarray, engine: str = "auto"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Calibrated probability ``(n,)``, raw forest probability ``(n,)``, contributions.

        Args:
            encoded: the encoded applicants.
            engine: ``onnx`` (per request), ``trees`` (:class:`LeafTables`, for files) or
                ``auto`` (``trees`` from :attr:`BATCH_ROWS` rows when the pipeline is at hand).
        """
        tables = None
        if engine == "trees" or (engine == "auto" and len(encoded) >= self.BATCH_ROWS):
            tables = self._batch_engine()
        if tables is not None:
            out = tables.run(encoded, os.cpu_count() or 1)
        else:
            (out,) = self.session.run(None, {"X": encoded})
        k = len(self.calibrators)
        raw = out[:, :k].astype(np.float64)
        probability = np.mean(
            [calibrate(raw[:, i], c) for i, c in enumerate(self.calibrators)], axis=0
        )
        return probability, raw.mean(axis=1), out[:, k:]

    def run_encoded(self, encoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probability of "bad" ``(n,)`` and attribute contributions ``(n, 20)``.

        Contributions explain the forests' raw probability (they add up to it with the bias);
        calibration is monotone, so they rank the attributes the same way.
        """
        probability, _, contributions = self.run_raw(encoded)
        return probability, contributions

    def run_records(self, records: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        return self.run_encoded(self.encoder.encode_records(records))

    def run_frame(self, applicants: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return self.run_encoded(self.encoder.encode_frame(applicants))


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


def verify(pipeline: Any, fast: FastPath, applicants: pd.DataFrame) -> float:
    """Check the fast path against the fitted pipeline; return the largest |Δ probability|.

    Raises:
        FastPathUnavailable: encodings differ, probabilities differ by more than
            :data:`PARITY_TOLERANCE`, or contributions do not add up to the probability.
    """
    reference = np.asarray(pipeline[:-1].transform(applicants), dtype=np.float32)
    encoded = fast.encoder.encode_frame(applicants)
    records = applicants.to_dict("records")
    one_by_one = np.vstack([fast.encoder.encode_records([r]) for r in records])
    for candidate in (encoded, one_by_one):
        if not np.allclose(reference, candidate, rtol=1e-6, atol=0):
            raise FastPathUnavailable("the compiled encoder disagrees with the fitted feature step")
    expected = pipeline.predict_proba(applicants)[:, 1]
    gap = 0.0
    engines = ("onnx", "trees") if fast.pipeline is not None else ("onnx",)
    for engine in engines:
        probability, raw, contributions = fast.run_raw(encoded, engine)
        gap = max(gap, float(np.max(np.abs(probability - expected))))
        if gap > PARITY_TOLERANCE:
            raise FastPathUnavailable(f"{engine} probabilities differ by {gap:.2e}")
        closure = np.max(np.abs(fast.bias + contributions.sum(axis=1) - raw))
        if closure > 1e-4:
            raise FastPathUnavailable(f"{engine} contributions do not add up ({closure:.2e})")
    return gap


def compile_pipeline(pipeline: Any) -> tuple[bytes, EncodedLayout, float]:
    """Generate the fast path's graph, layout and bias from a fitted pipeline."""
    layout = read_layout(pipeline)
    lineage = attribute_lineage(pipeline, layout)
    graph, bias = build_graph([forest for forest, _ in components(pipeline)], lineage)
    return graph, layout, bias


def _write_cache(folder: Path, graph: bytes, layout: EncodedLayout, bias: float, key: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "fingerprint": key,
        "bias": bias,
        "numeric": layout.numeric,
        "categorical": layout.categorical,
        "names": layout.names,
    }
    for name, payload in ((GRAPH_FILE, graph), (META_FILE, json.dumps(meta).encode())):
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}-")
        with os.fdopen(handle, "wb") as out:
            out.write(payload)
        os.replace(temporary, folder / name)


def _read_cache(folder: Path, key: str) -> tuple[bytes, EncodedLayout, float] | None:
    try:
        meta = json.loads((folder / META_FILE).read_text())
        if meta.get("fingerprint") != key:
            return None
        graph = (folder / GRAPH_FILE).read_bytes()
    except (OSError, ValueError):
        return None
    layout = EncodedLayout(
        tuple(meta["numeric"]),
        tuple((column, tuple(levels)) for column, levels in meta["categorical"]),
        tuple(meta["names"]),
    )
    return graph, layout, float(meta["bias"])


def load_or_build(
    pipeline: Any, metadata: Mapping[str, Any], cache_dir: Path | None = None, probes: int = 256
) -> FastPath:
    """The fast path for a fitted pipeline, from ``cache_dir`` or freshly compiled.

    Either way it is verified against the pipeline on codebook probe applicants before use.

    Args:
        pipeline: the fitted pipeline.
        metadata: the model's metadata (identifies the cache entry).
        cache_dir: where to keep the compiled graph; None or read-only = do not cache.
        probes: number of random codebook applicants to verify on.

    Raises:
        FastPathUnavailable: the pipeline cannot be compiled or the result disagrees.
    """
    key = fingerprint(metadata)
    cached = _read_cache(cache_dir, key) if cache_dir is not None else None
    if cached is None:
        graph, layout, bias = compile_pipeline(pipeline)
        if cache_dir is not None:
            try:
                _write_cache(cache_dir, graph, layout, bias, key)
            except OSError as error:
                log.warning("could not cache the fast path in %s: %s", cache_dir, error)
    else:
        graph, layout, bias = cached
    if layout != read_layout(pipeline):
        raise FastPathUnavailable("cached fast path was built for another encoder layout")
    calibrators = [calibrator for _, calibrator in components(pipeline)]
    fast = FastPath.from_bytes(graph, layout, bias, calibrators)
    fast.pipeline = pipeline
    gap = verify(pipeline, fast, probe_applicants(probes, seed=7))
    log.info("fast path ready (max |Δ probability| %.1e on %d probes)", gap, probes)
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
