"""Moving the registry's aliases by hand (``credit-risk promote``), with the gate's evidence.

A training run moves the aliases itself: the champion alias when its gate promotes the new
version, the challenger alias when the gate keeps the champion (:mod:`credit_risk.train`).
:func:`promote` moves either alias to a version explicitly, under the store's lock, and
exports that version to the alias's folder (``model_dir`` for the champion, the challenger
folder beside it), where a running service picks it up on a reload (``POST /admin/reload`` or
SIGHUP; :mod:`credit_risk.api.reload`). Making the challenger the champion clears the
challenger alias and its folder: a version does not challenge itself.

The gate's evidence shown is what the gate stored on the version: its registry tags named
``gate_*`` (protocol, rows, values, interval, margin, decision), or, for versions gated before
those tags existed, its run's ``promotion`` tag.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from credit_risk.config import Settings, challenger_folder
from credit_risk.errors import UserError
from credit_risk.model_folder import DRIFT_REFERENCE_ARTIFACT, METADATA_FILE
from credit_risk.registry import (
    EXPORT_METADATA_ARTIFACT,
    champion_version,
    configure_mlflow,
    export_model,
    load_registered,
    store_lock,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

GATE_TAG_PREFIX = "gate_"
RUN_GATE_TAG = "promotion"


class Alias(StrEnum):
    """The two aliases the service serves (their names in the registry come from settings)."""

    CHAMPION = "champion"
    CHALLENGER = "challenger"


class PromotionError(UserError):
    """The version or alias cannot be moved as asked (the message says why)."""


@dataclass
class Promotion:
    """What :func:`promote` did."""

    alias: Alias
    version: str
    previous: str | None  # the version that held the alias before (None: nobody)
    evidence: dict[str, str]
    exported_to: Path | None = None
    cleared: list[str] = field(default_factory=list)  # what else changed, in words

    def text(self, model_name: str) -> str:
        was = f"v{self.previous}" if self.previous else "nobody"
        lines = [f"{model_name} v{self.version} is now the {self.alias} (was {was})"]
        lines += self.cleared
        if self.evidence:
            lines.append(f"gate evidence stored on v{self.version}:")
            lines += [f"  {key}: {value}" for key, value in sorted(self.evidence.items())]
        else:
            lines.append(f"no gate evidence is stored on v{self.version}")
        if self.exported_to is not None:
            lines.append(
                f"exported to {self.exported_to}; a running service picks it up on "
                "POST /admin/reload or SIGHUP"
            )
        return "\n".join(lines)


def gate_evidence(client: MlflowClient, version: ModelVersion) -> dict[str, str]:
    """The gate's evidence stored on a version: its ``gate_*`` tags, else its run's
    ``promotion`` tag (empty when there is neither)."""
    tags = {k: str(v) for k, v in (version.tags or {}).items() if k.startswith(GATE_TAG_PREFIX)}
    if tags or not version.run_id:
        return tags
    from mlflow.exceptions import MlflowException

    try:
        run_tags = client.get_run(version.run_id).data.tags
    except MlflowException:
        return {}
    return {RUN_GATE_TAG: run_tags[RUN_GATE_TAG]} if RUN_GATE_TAG in run_tags else {}


def _version(client: MlflowClient, name: str, number: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    if not number.isdigit():
        raise PromotionError(f"version {number!r}: expected a version number such as 3")
    try:
        return client.get_model_version(name, number)
    except MlflowException:
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
        listed = ", ".join(map(str, versions)) or "none"
        raise PromotionError(
            f"version {number} of {name} does not exist (registered versions: {listed})"
        ) from None


def version_metadata(settings: Settings, version: ModelVersion) -> dict[str, Any]:
    """``metadata.json`` of a registered version: the one its training run exported (logged to
    the run), else rebuilt from the registry as for serving it by URI."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if version.run_id:
        try:
            text = mlflow.artifacts.load_text(f"runs:/{version.run_id}/{EXPORT_METADATA_ARTIFACT}")
        except (MlflowException, OSError):
            log.info("v%s has no %s: metadata from the registry", version.version, METADATA_FILE)
        else:
            metadata: dict[str, Any] = json.loads(text)
            metadata["model_version"] = str(version.version)
            return metadata
    uri = f"models:/{settings.registered_model_name}/{version.version}"
    _, rebuilt, _ = load_registered(uri, settings.tracking_uri)
    return rebuilt


def export_version(settings: Settings, version: ModelVersion, folder: Path) -> Path:
    """Export a registered version, with its metadata and drift reference, to ``folder``."""
    metadata = version_metadata(settings, version)
    reference = (
        f"runs:/{version.run_id}/{DRIFT_REFERENCE_ARTIFACT}"
        if version.run_id and metadata.get("drift_reference")
        else None
    )
    uri = f"models:/{settings.registered_model_name}/{version.version}"
    return export_model(uri, metadata, folder, reference)


def _folder_version(folder: Path) -> str | None:
    try:
        return str(json.loads((folder / METADATA_FILE).read_text())["model_version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def promote(settings: Settings, alias: Alias, number: str, export: bool = True) -> Promotion:
    """Give ``alias`` to version ``number`` and export it to the alias's folder.

    Args:
        settings: the registry (``tracking_uri``, ``registered_model_name``, alias names) and
            the folders (``model_dir``, ``challenger_dir``).
        alias: champion or challenger.
        number: the version number.
        export: also export the version to the alias's folder (False: move the alias only).

    Raises:
        PromotionError: no such version, or the champion's version asked to be challenger.
    """
    client = configure_mlflow(settings)
    name = settings.registered_model_name
    version = _version(client, name, number)
    evidence = gate_evidence(client, version)
    names = {Alias.CHAMPION: settings.champion_alias, Alias.CHALLENGER: settings.challenger_alias}
    folders = {Alias.CHAMPION: settings.model_dir, Alias.CHALLENGER: challenger_folder(settings)}
    with store_lock(settings.tracking_uri, f"move the {alias} alias"):
        holder = champion_version(client, name, names[alias])
        champion = champion_version(client, name, names[Alias.CHAMPION])
        if alias == Alias.CHALLENGER and champion is not None and str(champion.version) == number:
            raise PromotionError(
                f"v{number} is the champion; a version cannot challenge itself (promote "
                "another version to champion first)"
            )
        client.set_registered_model_alias(name, names[alias], number)
        result = Promotion(alias, number, str(holder.version) if holder else None, evidence)
        if alias == Alias.CHAMPION:
            challenger = champion_version(client, name, names[Alias.CHALLENGER])
            if challenger is not None and str(challenger.version) == number:
                client.delete_registered_model_alias(name, names[Alias.CHALLENGER])
                result.cleared.append(f"the {names[Alias.CHALLENGER]} alias is cleared")
                folder = folders[Alias.CHALLENGER]
                if export and _folder_version(folder) == number:
                    shutil.rmtree(folder)
                    result.cleared.append(f"removed {folder} (the shadow stops on reload)")
        if export:
            result.exported_to = export_version(settings, version, folders[alias])
    return result
