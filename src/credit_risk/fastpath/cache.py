"""The cache of verified fast paths, and loading a model's fast path from it or by compiling.

A compiled fast path is written to ``<model folder>/fastpath/`` only after :func:`verify`
passed, with a manifest holding the verification result and each file's sha256.
:func:`load_cached` serves from that cache alone, without MLflow, scikit-learn or the fitted
pipeline, when the manifest matches the model (:func:`fingerprint`: every metadata field and,
for an exported folder, the sha256 of each file of its pipeline), this code
(:func:`code_fingerprint`) and the cache's files; anything else (an edited ``metadata.json``
or ``model.skops`` included) falls back to loading the pipeline, compiling and verifying
again (:func:`load_or_build`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from credit_risk.derivations import DERIVATIONS
from credit_risk.fastpath.artifact import PARITY_TOLERANCE, FastPath, compile_pipeline, verify
from credit_risk.fastpath.encoding import EncodedLayout, RowEncoder, read_layout
from credit_risk.fastpath.errors import FastPathUnavailable
from credit_risk.fastpath.kernel import ForestArrays
from credit_risk.fastpath.lineage import probe_applicants
from credit_risk.schema import ATTRIBUTES

log = logging.getLogger(__name__)

FASTPATH_DIR = "fastpath"
GRAPH_FILE = "forest.onnx"
TREES_FILE = "forest.npz"
META_FILE = "fastpath.json"
# Bumped whenever the generated artifact's layout changes, so stale caches are rebuilt.
FORMAT_VERSION = 6
# Seed of the codebook probe applicants the fast path is verified on.
PROBE_SEED = 7


def fingerprint(metadata: Mapping[str, Any], files: Mapping[str, str] | None = None) -> str:
    """Identifies the model a cached fast path was built from.

    Args:
        metadata: the model's metadata; every field counts, so any edit is a different model.
        files: sha256 of each file of the exported pipeline, by path (see
            :func:`credit_risk.model_folder.model_file_digests`); None outside a model folder.
    """
    key = json.dumps({"metadata": metadata, "files": files or {}}, sort_keys=True, default=str)
    return hashlib.sha256(f"{FORMAT_VERSION}:{key}".encode()).hexdigest()[:16]


def _fingerprinted_sources() -> list[Path]:
    """Every module of this package, the feature step, its derivations and the codebook."""
    package = Path(__file__).resolve().parent
    sources = sorted(path for path in package.glob("*.py") if not path.name.startswith("."))
    for module in ("credit_risk.derivations", "credit_risk.features", "credit_risk.schema"):
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise FastPathUnavailable(f"cannot read the source of {module}")
        sources.append(Path(spec.origin))
    return sources


def code_fingerprint() -> str:
    """Identifies the code a cached fast path was verified with.

    The sources of the feature step, the codebook and this compiler: when any of them changes,
    a cache verified against the old code is rebuilt and verified again, never trusted.
    """
    digest = hashlib.sha256(str(FORMAT_VERSION).encode())
    for source in _fingerprinted_sources():
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def _write_atomic(path: Path, payload: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(payload)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_cache(
    folder: Path,
    fast: FastPath,
    key: str,
    verification: Mapping[str, Any],
    sources: Mapping[str, str] | None = None,
) -> None:
    """Store a verified fast path: graph, forest arrays, then the manifest that vouches for them.

    The manifest (:data:`META_FILE`) is written last and holds each file's sha256, the model and
    code fingerprints and the verification result, so a half-written, stale or edited cache is
    refused by :func:`read_cache`. ``sources`` (the pipeline files' sha256 the key covers) is
    recorded too, so that a refused cache can say which file changed.
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
        "sources": dict(sources or {}),
        "bias": fast.bias,
        "calibrators": fast.calibrators,
        "numeric": layout.numeric,
        "categorical": layout.categorical,
        "names": layout.names,
        "derived": [derivation.name for derivation in layout.derivations],
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
    if meta.get("format") != FORMAT_VERSION:
        log.info("cached fast path in %s has another format", folder)
        return None
    if meta.get("fingerprint") != key:
        # The metadata or the pipeline's files differ from those the cache was verified with.
        log.warning(
            "cached fast path in %s was verified for another metadata.json or model/; "
            "not used (recompiled and verified again when the pipeline loads)",
            folder,
        )
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
        if meta["derived"] != [derivation.name for derivation in DERIVATIONS]:
            raise ValueError("derived variables differ from the feature step's")
        layout = EncodedLayout(
            tuple(meta["numeric"]),
            tuple((column, tuple(levels)) for column, levels in meta["categorical"]),
            tuple(meta["names"]),
            DERIVATIONS,
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
    if len(fast.calibrators) + len(ATTRIBUTES) != fast.forest.n_targets:
        log.warning("cached fast path in %s has inconsistent targets", folder)
        return None
    return fast, meta


def load_cached(
    folder: Path, metadata: Mapping[str, Any], files: Mapping[str, str] | None = None
) -> FastPath | None:
    """The light path: a verified cached fast path, without loading the fitted pipeline.

    Used only when the cache's manifest matches the model (:func:`fingerprint` of ``metadata``
    and ``files``), the code (:func:`code_fingerprint`) and every file's sha256; the batch
    engine must then reproduce, on the same probe applicants, the probabilities the pipeline
    gave when it was verified.

    Returns:
        The fast path (``pipeline`` None), or None: load the pipeline and build instead.
    """
    found = read_cache(Path(folder), fingerprint(metadata, files))
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
    pipeline: Any,
    metadata: Mapping[str, Any],
    cache_dir: Path | None = None,
    probes: int = 256,
    files: Mapping[str, str] | None = None,
) -> FastPath:
    """The fast path for a fitted pipeline, from ``cache_dir`` or freshly compiled.

    Either way it is verified against the pipeline on codebook probe applicants before use; a
    freshly compiled one is cached only after it passed, with the verification result.

    Args:
        pipeline: the fitted pipeline.
        metadata: the model's metadata (identifies the cache entry).
        cache_dir: where to keep the compiled artifact; None or read-only = do not cache.
        probes: number of random codebook applicants to verify on.
        files: sha256 of the exported pipeline's files (see :func:`fingerprint`).

    Raises:
        FastPathUnavailable: the pipeline cannot be compiled or the result disagrees.
    """
    key = fingerprint(metadata, files)
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
            write_cache(cache_dir, fast, key, verification, files)
        except OSError as error:
            log.warning("could not cache the fast path in %s: %s", cache_dir, error)
    return fast
