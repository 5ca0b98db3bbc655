"""The compiled fast path: one ONNX graph generated from the fitted forest, with reasons built in.

The fitted pipeline is ``features -> encode -> classifier`` (a random forest). Serving it with
scikit-learn (pandas frames, a joblib pool over the trees, exact TreeSHAP for reasons) is too
slow for every request, so this package compiles the fitted artifact, stage by stage:

- :mod:`~credit_risk.fastpath.encoding`: validated applicants -> the encoded matrix, in numpy,
  laid out from the fitted ``encode`` step; the derived variables come from the feature step's
  own table (:data:`credit_risk.derivations.DERIVATIONS`).
- :mod:`~credit_risk.fastpath.lineage`: which of the 20 codebook attributes each encoded column
  comes from, found by probing the fitted feature step.
- :mod:`~credit_risk.fastpath.forests`: the forests, their calibration maps, and each leaf's
  targets: probability of "bad" and path contribution to each attribute (Saabas), so that
  ``probability = bias + sum(contributions)`` exactly.
- :mod:`~credit_risk.fastpath.graph`: one ONNX graph finding each tree's leaf and summing its
  targets in float64.
- :mod:`~credit_risk.fastpath.kernel`: the same trees and targets as flat arrays, walked by a
  numba kernel (files, and requests when numba is available), with a numpy fallback.
- :mod:`~credit_risk.fastpath.artifact`: :class:`FastPath`, compiling and verifying it against
  the fitted pipeline (encoder and both engines, :data:`PARITY_TOLERANCE`).
- :mod:`~credit_risk.fastpath.cache`: the verified artifact cached beside the model, and
  :func:`load_cached` / :func:`load_or_build`.

A change to the feature step that the encoder does not reproduce fails :func:`verify`, which
disables the fast path instead of skewing decisions.
"""

from credit_risk.fastpath.artifact import (
    PARITY_TOLERANCE,
    FastPath,
    compile_pipeline,
    reference_contributions,
    verify,
)
from credit_risk.fastpath.cache import (
    FASTPATH_DIR,
    FORMAT_VERSION,
    GRAPH_FILE,
    META_FILE,
    PROBE_SEED,
    TREES_FILE,
    code_fingerprint,
    fingerprint,
    load_cached,
    load_or_build,
    read_cache,
    write_cache,
)
from credit_risk.fastpath.encoding import EncodedLayout, RowEncoder, read_layout
from credit_risk.fastpath.errors import FastPathUnavailable
from credit_risk.fastpath.forests import calibrate, components, leaf_attributions
from credit_risk.fastpath.graph import build_graph
from credit_risk.fastpath.kernel import ForestArrays
from credit_risk.fastpath.lineage import attribute_lineage, probe_applicants

__all__ = [
    "FASTPATH_DIR",
    "FORMAT_VERSION",
    "GRAPH_FILE",
    "META_FILE",
    "PARITY_TOLERANCE",
    "PROBE_SEED",
    "TREES_FILE",
    "EncodedLayout",
    "FastPath",
    "FastPathUnavailable",
    "ForestArrays",
    "RowEncoder",
    "attribute_lineage",
    "build_graph",
    "calibrate",
    "code_fingerprint",
    "compile_pipeline",
    "components",
    "fingerprint",
    "leaf_attributions",
    "load_cached",
    "load_or_build",
    "probe_applicants",
    "read_cache",
    "read_layout",
    "reference_contributions",
    "verify",
    "write_cache",
]
