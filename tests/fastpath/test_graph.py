"""The ONNX graph finds scikit-learn's leaf in every tree and reads its float64 targets exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd

from credit_risk.data import read_applicants
from credit_risk.fastpath import components, load_or_build
from credit_risk.scoring import Scorer
from tests.conftest import DATA


def test_graph_reaches_scikit_learns_leaf_in_every_tree(
    scorer: Scorer, applicants: pd.DataFrame
) -> None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    assert scorer.fast is not None
    model = onnx.load_from_string(scorer.fast.graph)
    model.graph.output.append(helper.make_tensor_value_info("rows", TensorProto.INT64, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    encoded = scorer.fast.encoder.encode_frame(applicants)
    _, rows = session.run(None, {"X": encoded})
    expected, offset = [], 0
    for forest, _ in components(scorer.pipeline):
        for estimator in forest.estimators_:
            tree = estimator.tree_
            leaves = np.flatnonzero(tree.children_left == -1)
            expected.append(offset + np.searchsorted(leaves, tree.apply(encoded)))
            offset += len(leaves)
    assert np.array_equal(rows, np.column_stack(expected))


def test_trees_that_are_one_leaf_compile(applicants: pd.DataFrame) -> None:
    from imblearn.pipeline import Pipeline
    from sklearn.ensemble import RandomForestClassifier

    from credit_risk.features import FeatureEngineer
    from credit_risk.model import build_encoder

    target = read_applicants(DATA).target
    assert target is not None
    # No node has enough samples to split: every tree is its root, a leaf.
    forest = RandomForestClassifier(n_estimators=3, min_samples_split=5000, random_state=0)
    pipeline = Pipeline(
        [
            ("features", FeatureEngineer(drop_protected=False)),
            ("encode", build_encoder(False)),
            ("classifier", forest),
        ]
    )
    pipeline.fit(applicants, target.to_numpy())
    assert all(tree.tree_.node_count == 1 for tree in forest.estimators_)
    fast = load_or_build(pipeline, {"run_id": "one-leaf"}, None)
    expected = pipeline.predict_proba(applicants)[:, 1]
    for engine in ("trees", "onnx"):
        probability, contributions = fast.run_frame(applicants, engine)
        assert np.max(np.abs(probability - expected)) <= 1e-9, engine
        assert not contributions.any()


def test_tree_ensemble_returns_leaf_rows_beyond_float32_exactly() -> None:
    """The graph relies on float64 leaf weights: float32 holds integers exactly only to 2**24."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rows = np.array([2.0**24 + 1, 2.0**53 - 1])
    assert not np.array_equal(rows.astype(np.float32), rows)
    ensemble = helper.make_node(
        "TreeEnsemble",
        ["X"],
        ["Y"],
        domain="ai.onnx.ml",
        n_targets=1,
        aggregate_function=1,
        post_transform=0,
        tree_roots=[0],
        nodes_featureids=[0],
        nodes_modes=numpy_helper.from_array(np.zeros(1, dtype=np.uint8)),
        nodes_splits=numpy_helper.from_array(np.array([0.5])),
        nodes_truenodeids=[0],
        nodes_trueleafs=[1],
        nodes_falsenodeids=[1],
        nodes_falseleafs=[1],
        leaf_targetids=[0, 0],
        leaf_weights=numpy_helper.from_array(rows),
    )
    graph = helper.make_graph(
        [ensemble],
        "leaf_rows",
        [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, 1])],
        [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, [None, 1])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)]
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"X": np.array([[0.0], [1.0]])})
    assert np.array_equal(out[:, 0], rows)
