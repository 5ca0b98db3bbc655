"""The ONNX graph: the forests as one ``TreeEnsemble`` finding each tree's leaf, then its targets.

One ONNX Runtime call returns every forest's probability and every attribute's contribution,
in float64 throughout, as scikit-learn's ``predict_proba`` computes: the features are compared
as float64 with scikit-learn's own float64 thresholds, the ensemble (``ai.onnx.ml`` opset 5,
double) outputs the row of each tree's leaf in the per-leaf target table, and the graph gathers
those float64 rows and sums them over the trees. ONNX's ``TreeEnsembleRegressor`` is not used
to sum the targets: its output is float32, whose rounding (~1e-8) the steep segments of an
isotonic calibration map magnify. skl2onnx's forest converter is not used either: its
``decision_leaf`` output emits one operator per tree and it cannot carry per-leaf attributions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from credit_risk.fastpath.forests import tree_targets

# TreeEnsemble's node modes (ai.onnx.ml opset 5): x <= threshold goes to the true branch.
_BRANCH_LEQ = 0


def build_graph(forests: Sequence[Any], lineage: np.ndarray) -> tuple[bytes, float]:
    """Compile fitted forests into one ONNX graph.

    Args:
        forests: the pipeline's forests (one, or one per calibrated classifier).
        lineage: ``(width, n_attributes)`` map from encoded columns to attributes.

    Returns:
        The serialised model (input ``X`` float32 ``[n, width]``, output ``Y`` float64
        ``[n, n_forests + n_attributes]``: each forest's probability of "bad", then the
        attributions averaged over forests) and the bias (mean root probability).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    width = lineage.shape[0]
    n_targets = len(forests) + lineage.shape[1]
    nodes: dict[str, list[Any]] = {
        key: []
        for key in (
            "featureids",
            "splits",
            "truenodeids",
            "trueleafs",
            "falsenodeids",
            "falseleafs",
        )
    }
    roots: list[int] = []
    leaf_trees: list[int] = []
    table: list[np.ndarray] = []
    bias = 0.0
    n_nodes = n_leaves = 0
    for tree_id, found in enumerate(tree_targets(forests, lineage)):
        tree = found.tree
        bias += found.bias
        is_leaf = tree.children_left == -1
        # Each node's position: branches among the graph's nodes, leaves among its leaves (the
        # rows of the target table, in the order of found.leaves).
        position = np.zeros(tree.node_count, dtype=np.int64)
        branches = np.flatnonzero(~is_leaf)
        position[branches] = n_nodes + np.arange(len(branches))
        position[found.leaves] = n_leaves + np.arange(len(found.leaves))
        roots.append(n_nodes)
        if len(branches):
            left, right = tree.children_left[branches], tree.children_right[branches]
            nodes["featureids"].extend(tree.feature[branches].tolist())
            nodes["splits"].extend(tree.threshold[branches].tolist())
            nodes["truenodeids"].extend(position[left].tolist())
            nodes["trueleafs"].extend(is_leaf[left].astype(int).tolist())
            nodes["falsenodeids"].extend(position[right].tolist())
            nodes["falseleafs"].extend(is_leaf[right].astype(int).tolist())
        else:  # a tree that is one leaf: a split whose two branches both end in it
            nodes["featureids"].append(0)
            nodes["splits"].append(np.inf)
            for side in ("true", "false"):
                nodes[f"{side}nodeids"].append(n_leaves)
                nodes[f"{side}leafs"].append(1)
        n_nodes += max(1, len(branches))
        n_leaves += len(found.leaves)
        leaf_trees.extend([tree_id] * len(found.leaves))
        table.append(found.targets)
    n_trees = len(roots)
    ensemble = helper.make_node(
        "TreeEnsemble",
        ["X64"],
        ["leaf_rows"],
        domain="ai.onnx.ml",
        n_targets=n_trees,
        # SUM: each tree adds its leaf's row (a float64, exact: below 2**53) to its own column.
        aggregate_function=1,
        post_transform=0,
        tree_roots=roots,
        nodes_featureids=nodes["featureids"],
        nodes_modes=numpy_helper.from_array(np.full(n_nodes, _BRANCH_LEQ, dtype=np.uint8)),
        nodes_splits=numpy_helper.from_array(np.asarray(nodes["splits"], dtype=np.float64)),
        nodes_truenodeids=nodes["truenodeids"],
        nodes_trueleafs=nodes["trueleafs"],
        nodes_falsenodeids=nodes["falsenodeids"],
        nodes_falseleafs=nodes["falseleafs"],
        leaf_targetids=leaf_trees,
        leaf_weights=numpy_helper.from_array(np.arange(n_leaves, dtype=np.float64)),
    )
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["X"], ["X64"], to=TensorProto.DOUBLE),
            ensemble,
            helper.make_node("Cast", ["leaf_rows"], ["rows"], to=TensorProto.INT64),
            helper.make_node("Gather", ["targets", "rows"], ["per_tree"], axis=0),
            helper.make_node("ReduceSum", ["per_tree", "tree_axis"], ["Y"], keepdims=0),
        ],
        "credit_risk_forest",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, [None, n_targets])],
        initializer=[
            numpy_helper.from_array(np.concatenate(table).astype(np.float64), "targets"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "tree_axis"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)]
    )
    model.producer_name = "credit_risk.fastpath"
    onnx.checker.check_model(model)
    return model.SerializeToString(), bias
