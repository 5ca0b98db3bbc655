"""The ONNX graph: the forests and their per-leaf targets as one ``TreeEnsembleRegressor``.

One ONNX Runtime call returns every forest's probability and every attribute's contribution.
skl2onnx's forest converter is not used: its ``decision_leaf`` output emits one operator per
tree and it cannot carry per-leaf attributions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from credit_risk.fastpath.forests import tree_targets


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

    width = lineage.shape[0]
    n_targets = len(forests) + lineage.shape[1]
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
    for tree_id, found in enumerate(tree_targets(forests, lineage)):
        tree = found.tree
        bias += found.bias
        leaf = tree.children_left == -1
        count = tree.node_count
        nodes["treeids"].extend([tree_id] * count)
        nodes["nodeids"].extend(range(count))
        nodes["featureids"].extend(np.where(leaf, 0, tree.feature).tolist())
        nodes["values"].extend(np.where(leaf, 0.0, tree.threshold).tolist())
        nodes["modes"].extend("LEAF" if is_leaf else "BRANCH_LEQ" for is_leaf in leaf)
        nodes["truenodeids"].extend(np.where(leaf, 0, tree.children_left).tolist())
        nodes["falsenodeids"].extend(np.where(leaf, 0, tree.children_right).tolist())
        for node, weights in zip(found.leaves, found.targets, strict=True):
            for target in np.flatnonzero(weights):
                targets["treeids"].append(tree_id)
                targets["nodeids"].append(int(node))
                targets["ids"].append(int(target))
                targets["weights"].append(float(weights[target]))
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
