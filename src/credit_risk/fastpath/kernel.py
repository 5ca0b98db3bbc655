"""The batch engine: the forests as flat arrays (:class:`ForestArrays`), walked by a kernel.

The kernel is compiled with numba (level by level over blocks of rows, several threads for
files); without numba a numpy version computes the same sums. The arrays hold the same trees
and per-leaf targets as the ONNX graph, and no scikit-learn is needed to run them. Features and
thresholds are float32 (the thresholds rounded down, so every row reaches scikit-learn's leaf);
the leaves' targets and their sums are float64, as scikit-learn's ``predict_proba`` sums.
"""

from __future__ import annotations

import functools
import io
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from credit_risk.fastpath.forests import tree_targets

log = logging.getLogger(__name__)

# float64 lanes of a 256-bit SIMD register: rows of the target table are padded to a multiple.
_LANES = 4


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
    negative-index wrap-around is generated. Targets are summed in float64, in tree order, as
    scikit-learn sums its trees' probabilities: a float32 sum's rounding (~1e-8) is magnified by
    the steep segments of an isotonic calibration map.
    """
    block = 128
    width = values.shape[1]
    n_out = out.shape[1]
    nodes = np.empty(block, dtype=np.uint32)
    total = np.empty((block, width), dtype=np.float64)
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
        total = np.zeros((high - low, values.shape[1]), dtype=np.float64)
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
            np.zeros((1, _LANES), dtype=np.float64),
            nodes,
            nodes,
            np.zeros((1, 1), dtype=np.float64),
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
    values: np.ndarray  # float64 (n_leaves, n_targets)

    ARRAYS: ClassVar[tuple[str, ...]] = (
        "feature",
        "threshold",
        "child",
        "leaf",
        "roots",
        "depth",
        "values",
    )
    DTYPES: ClassVar[dict[str, Any]] = {"threshold": np.float32, "values": np.float64}

    @property
    def n_targets(self) -> int:
        return int(self.values.shape[1])

    @functools.cached_property
    def max_feature(self) -> int:
        """The highest encoded column a split reads (a scan of every node: made once)."""
        return int(self.feature.max(initial=0))

    @functools.cached_property
    def padded_values(self) -> np.ndarray:
        """:attr:`values` padded to whole SIMD registers (:data:`_LANES` float64): the kernel's
        adds vectorise.

        Made once: copying the whole table on every call would cost each request dearly.
        """
        padded = -(-self.n_targets // _LANES) * _LANES
        if padded == self.n_targets:
            return self.values
        values = np.zeros((len(self.values), padded), dtype=np.float64)
        values[:, : self.n_targets] = self.values
        return values

    @classmethod
    def from_forests(cls, forests: Sequence[Any], lineage: np.ndarray) -> ForestArrays:
        """Flatten fitted forests, with the per-leaf targets of :func:`tree_targets`."""
        parts: dict[str, list[np.ndarray]] = {name: [] for name in cls.ARRAYS}
        offset = n_leaves = 0
        for found in tree_targets(forests, lineage):
            tree = found.tree
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
            # The table's rows in breadth-first order of the leaves, as numbered above.
            breadth_first_rows = np.searchsorted(found.leaves, order[is_leaf])
            parts["values"].append(found.targets[breadth_first_rows])
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
        """``(n, n_targets)`` float64 sums, as the ONNX graph's output; rows split on threads."""
        from concurrent.futures import ThreadPoolExecutor

        kernel = _kernel()
        encoded = np.ascontiguousarray(encoded, dtype=np.float32)
        self.check_width(encoded.shape[1])  # the kernel does not bound-check
        values = self.padded_values
        out = np.empty((len(encoded), self.n_targets), dtype=np.float64)
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


def kernel_is_compiled() -> bool:
    """Whether the batch kernel runs compiled by numba (False: the numpy fallback)."""
    return _kernel() is not _accumulate_numpy
