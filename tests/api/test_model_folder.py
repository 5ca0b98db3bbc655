"""A model folder that cannot be trusted is never served: not ready, 503, file and field named."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from credit_risk import fastpath
from credit_risk.api import create_app
from credit_risk.config import Settings
from credit_risk.model_folder import ModelFolderError, model_file_digests
from credit_risk.registry import read_metadata
from credit_risk.scoring import Scorer
from tests.api.conftest import APPLICANT, settled_health


def _copy(model_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    return folder


def _edit_metadata(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / "metadata.json"
        metadata = json.loads(path.read_text())
        change(metadata)
        path.write_text(json.dumps(metadata))

    return edit


def _truncate(name: str, keep: Callable[[int], int]) -> Callable[[Path], None]:
    def truncate(folder: Path) -> None:
        path = next(folder.rglob(name))
        path.write_bytes(path.read_bytes()[: keep(path.stat().st_size)])

    return truncate


def _edit_reason_codes(folder: Path) -> None:
    path = folder / "reason_codes.json"
    table = json.loads(path.read_text())
    table["codes"][0]["text"]["en"] = "Checking account"
    path.write_text(json.dumps(table))


def _remove(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def _reference_at_threshold(metadata: dict) -> None:
    metadata["reason_reference"]["probability_bad"] = metadata["threshold"]


# (how the folder is damaged, the file named, what the error names beside it)
DAMAGE = {
    "threshold 1.5": (
        _edit_metadata(lambda m: m.update(threshold=1.5)),
        "metadata.json",
        "threshold",
    ),
    "threshold 0": (
        _edit_metadata(lambda m: m.update(threshold=0.0)),
        "metadata.json",
        "threshold",
    ),
    "threshold as text": (
        _edit_metadata(lambda m: m.update(threshold="0.2")),
        "metadata.json",
        "threshold",
    ),
    "no threshold": (_edit_metadata(lambda m: m.pop("threshold")), "metadata.json", "threshold"),
    "no model version": (
        _edit_metadata(lambda m: m.pop("model_version")),
        "metadata.json",
        "model_version",
    ),
    "drift reference outside the folder": (
        _edit_metadata(lambda m: m.update(drift_reference="../elsewhere.json")),
        "metadata.json",
        "drift_reference",
    ),
    "truncated metadata.json": (
        _truncate("metadata.json", lambda size: size // 2),
        "metadata.json",
        "not valid JSON",
    ),
    "empty metadata.json": (_truncate("metadata.json", lambda size: 0), "metadata.json", "empty"),
    "truncated model.skops": (
        _truncate("model.skops", lambda size: size // 2),
        "model.skops",
        "cannot be loaded",
    ),
    "edited reason codes": (_edit_reason_codes, "reason_codes.json", "reason_codes.sha256"),
    "no reason codes": (_remove("reason_codes.json"), "reason_codes.json", "missing"),
    "no reason reference": (
        _edit_metadata(lambda m: m.pop("reason_reference")),
        "metadata.json",
        "reason_reference",
    ),
    "reference not approved": (
        _edit_metadata(_reference_at_threshold),
        "metadata.json",
        "reason_reference.probability_bad",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_untrusted_folder_is_refused_naming_file_and_field(
    damage: str, model_dir: Path, tmp_path: Path
) -> None:
    change, file, named = DAMAGE[damage]
    folder = _copy(model_dir, tmp_path)
    change(folder)
    with pytest.raises(ModelFolderError) as raised:
        Scorer.from_folder(folder)
    assert Path(raised.value.path).name == file
    assert named in str(raised.value)
    if named in (
        "threshold",
        "model_version",
        "drift_reference",
        "reason_reference.probability_bad",
    ):
        assert raised.value.field == named


@pytest.mark.parametrize(
    "damage",
    [
        "threshold 1.5",
        "no threshold",
        "truncated metadata.json",
        "empty metadata.json",
        "truncated model.skops",
        "edited reason codes",
    ],
)
def test_service_stays_not_ready_on_an_untrusted_folder(
    damage: str, model_dir: Path, tmp_path: Path, app_settings: Settings
) -> None:
    change, file, named = DAMAGE[damage]
    folder = _copy(model_dir, tmp_path)
    change(folder)
    settings = app_settings.model_copy(update={"model_dir": folder})
    with TestClient(create_app(settings)) as client:
        health = settled_health(client)
        assert health.status_code == 503
        assert health.json()["status"] == "failed"
        assert file in health.json()["detail"] and named in health.json()["detail"]
        assert client.post("/predict", json=APPLICANT).status_code == 503
        assert client.post("/predict/batch", json={"applicants": [APPLICANT]}).status_code == 503


def test_info_reads_metadata_through_the_same_validation(model_dir: Path, tmp_path: Path) -> None:
    """``credit-risk info`` and card rendering read metadata with registry.read_metadata."""
    folder = _copy(model_dir, tmp_path)
    DAMAGE["threshold 1.5"][0](folder)
    with pytest.raises(ModelFolderError, match=r"metadata\.json: threshold: .*less than 1"):
        read_metadata(folder)


@pytest.mark.parametrize(
    "edit",
    [
        _edit_metadata(lambda m: m.update(objective="recall")),
        _edit_metadata(lambda m: m["cost_matrix"].update(bad_accepted=1.0)),
    ],
    ids=["objective", "cost_matrix"],
)
def test_metadata_edited_after_the_cache_was_built_is_detected(
    edit: Callable[[Path], None], model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _copy(model_dir, tmp_path)
    assert Scorer.from_folder(folder).fast.pipeline is None  # type: ignore[union-attr]
    edit(folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    cache = folder / fastpath.FASTPATH_DIR
    assert fastpath.load_cached(cache, metadata, model_file_digests(folder)) is None
    with caplog.at_level(logging.WARNING, logger="credit_risk.fastpath.cache"):
        scorer = Scorer.from_folder(folder)
    assert "another metadata.json or model/" in caplog.text
    # Not served from the stale cache: the pipeline was loaded, compiled and verified again.
    assert scorer.fast is not None and scorer.fast.pipeline is not None
    assert Scorer.from_folder(folder).fast.pipeline is None  # type: ignore[union-attr]
