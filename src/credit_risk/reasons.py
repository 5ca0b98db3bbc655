"""Adverse-action reasons: the reason-code table, the approved reference, and the ranking.

**Method.** The forest's raw score ``f`` (mean probability of bad over its trees) is split
exactly into one path contribution ``c_j`` per codebook attribute (Saabas, precomputed per leaf
by :mod:`credit_risk.fastpath`): ``f = bias + sum_j c_j``. The served probability is
``p = g(f)``, ``g`` the pipeline's calibrator, non-decreasing (checked when the reference is
built). The :class:`ReasonReference`, stored with the model, is the mean contribution of each
attribute over the training rows the model approves, ``ref_j``, with ``f_ref = bias + sum_j
ref_j`` and ``p_ref = g(f_ref)``. Every approved row has ``f < f_cut`` (the raw score where
``g`` reaches the threshold), so their mean does too: ``p_ref < threshold``. For a rejection
``p >= threshold``, hence

    d_j = c_j - ref_j,   sum_j d_j = f - f_ref > 0,

so at least one attribute has ``d_j > 0``: it raised this applicant's raw score, and with it
(``g`` monotone) the served probability, above that of the approved reference. Each ``d_j`` is
reported on the calibrated log-odds scale, ``d_j * (logit(p) - logit(p_ref)) / (f - f_ref)``:
these add up exactly to ``logit(p) - logit(p_ref)``, the served distance from the reference.

**Reasons** of a rejection are the attributes with ``d_j > 0``, largest first, at most
:data:`MAX_REASONS`; approvals get none. Protected attributes (attribute 9, age, foreign
worker) are never cited, whatever the policy: under ``exclude`` they are not inputs and their
``d_j`` is 0; under ``include`` they are skipped. Then at least one attribute that may be cited
has ``d_j > 0`` whenever the protected ones together do not outweigh the rest. When they do
(only possible under ``include``), no factor that may be cited explains the rejection, and
the rejection carries the single code :data:`FALLBACK_CODE`, which says so and asks for a
review by a person rather than citing a factor that did not raise the risk.

**Points scorecards** (:mod:`credit_risk.scorecard`) give the standard scorecard reasons
instead (:class:`PointsExplainer`): the points the applicant lost on each attribute against
that attribute's best bin, largest first, under the same rules (rejections only, never a
protected attribute, at most :data:`MAX_REASONS`, the same codes). More points mean a lower
probability of bad (the table's calibration slope is negative), so moving a cited attribute to
its best bin would lower this applicant's served probability: each reason raised the risk. A
scorecard whose best possible score is rejected cannot give reasons (it is never promoted or
served); otherwise a rejection under ``exclude`` always lost points on some attribute that may
be cited, and under ``include`` one that lost points only on protected attributes gets
:data:`FALLBACK_CODE`. Contributions are in :data:`UNIT_POINTS` there, :data:`UNIT_LOG_ODDS`
for the forest.

**Codes.** :data:`REASON_CODES` is the versioned table (code, attribute, condition, English and
Spanish text): one code per value of each categorical attribute (``R01-A11``) and per band of
each numeric one (``R02-B5``: 48 months or more). English texts come from the codebook
(:mod:`credit_risk.schema`); the Spanish ones are translations kept here. The table is saved
in each exported model folder (:data:`REASON_CODES_FILE`) and listed in its metadata; a
changed table needs a new :data:`REASON_CODES_VERSION` (``tests/test_reasons.py`` pins both).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import numpy as np

from credit_risk.schema import ATTRIBUTES, BY_NAME, FEATURE_NAMES, Attribute, Kind

MAX_REASONS = 4
REASON_CODES_VERSION = "1"
REASON_CODES_FILE: Final = "reason_codes.json"
LANGUAGES: tuple[str, ...] = ("en", "es")
DEFAULT_LANGUAGE = "en"
FALLBACK_CODE = "R00"
# Slots of a ranked-reason matrix: no reason, or the fallback instead of an attribute.
NO_REASON, FALLBACK = -1, -2
# What a reason's contribution is measured in: the forest's calibrated log-odds above the
# approved reference, or a scorecard's points lost against the attribute's best bin.
UNIT_LOG_ODDS, UNIT_POINTS = "log_odds", "points"
UNIT_MEANING: dict[str, str] = {
    UNIT_LOG_ODDS: "log-odds of bad above those of the approved training applicants, on the "
    "served (calibrated) scale",
    UNIT_POINTS: "points lost on the attribute against its best bin (a points scorecard)",
}
# Probabilities are clipped this far from 0 and 1 before taking log-odds.
_LOGIT_EPS = 1e-9

# Bands of numeric attributes: (lowest value of the band, English label, Spanish label). The
# highest band runs to the codebook's maximum. Installment rate uses the codebook's labels.
NUMERIC_BANDS: dict[str, tuple[tuple[int, str, str], ...]] = {
    "duration_months": (
        (1, "less than 12 months", "menos de 12 meses"),
        (12, "12 to 23 months", "de 12 a 23 meses"),
        (24, "24 to 35 months", "de 24 a 35 meses"),
        (36, "36 to 47 months", "de 36 a 47 meses"),
        (48, "48 months or more", "48 meses o más"),
    ),
    "credit_amount": (
        (1, "less than 1,000 DM", "menos de 1.000 DM"),
        (1000, "1,000 to 2,499 DM", "de 1.000 a 2.499 DM"),
        (2500, "2,500 to 4,999 DM", "de 2.500 a 4.999 DM"),
        (5000, "5,000 to 9,999 DM", "de 5.000 a 9.999 DM"),
        (10000, "10,000 DM or more", "10.000 DM o más"),
    ),
    "installment_rate": (
        (1, "", ">= 35 % de la renta disponible"),
        (2, "", "de 25 a < 35 % de la renta disponible"),
        (3, "", "de 20 a < 25 % de la renta disponible"),
        (4, "", "< 20 % de la renta disponible"),
    ),
    # german.doc gives the bands of present residence no meaning beyond their order.
    "residence_since": (
        (1, "band 1 of 4", "tramo 1 de 4"),
        (2, "band 2 of 4", "tramo 2 de 4"),
        (3, "band 3 of 4", "tramo 3 de 4"),
        (4, "band 4 of 4", "tramo 4 de 4"),
    ),
    "existing_credits": (
        (1, "1 credit", "1 crédito"),
        (2, "2 or 3 credits", "2 o 3 créditos"),
        (4, "4 or more credits", "4 o más créditos"),
    ),
    "people_liable": (
        (1, "1 person", "1 persona"),
        (2, "2 or more people", "2 o más personas"),
    ),
}

# Spanish names of the attributes that may be cited, and of their codes' labels.
ATTRIBUTE_ES: dict[str, str] = {
    "checking_account_status": "Estado de la cuenta corriente",
    "duration_months": "Duración del crédito",
    "credit_history": "Historial crediticio",
    "purpose": "Finalidad del crédito",
    "credit_amount": "Importe del crédito",
    "savings_account": "Cuenta de ahorro / bonos",
    "employment_since": "Antigüedad en el empleo actual",
    "installment_rate": "Cuota en porcentaje de la renta disponible",
    "other_debtors": "Otros deudores / avalistas",
    "residence_since": "Antigüedad en la residencia actual",
    "property": "Bienes",
    "other_installment_plans": "Otros planes de pago a plazos",
    "housing": "Vivienda",
    "existing_credits": "Número de créditos vigentes en este banco",
    "job": "Empleo",
    "people_liable": "Número de personas a su cargo",
    "telephone": "Teléfono",
}
LABEL_ES: dict[str, str] = {
    "A11": "< 0 DM",
    "A12": "de 0 a < 200 DM",
    "A13": ">= 200 DM / nómina domiciliada desde hace al menos 1 año",
    "A14": "sin cuenta corriente",
    "A30": "sin créditos / todos los créditos devueltos puntualmente",
    "A31": "todos los créditos en este banco devueltos puntualmente",
    "A32": "créditos vigentes pagados puntualmente hasta ahora",
    "A33": "retrasos en los pagos en el pasado",
    "A34": "cuenta crítica / otros créditos vigentes (no en este banco)",
    "A40": "coche (nuevo)",
    "A41": "coche (usado)",
    "A42": "muebles / equipamiento",
    "A43": "radio / televisión",
    "A44": "electrodomésticos",
    "A45": "reparaciones",
    "A46": "educación",
    "A47": "vacaciones",
    "A48": "reciclaje profesional",
    "A49": "negocio",
    "A410": "otros",
    "A61": "< 100 DM",
    "A62": "de 100 a < 500 DM",
    "A63": "de 500 a < 1000 DM",
    "A64": ">= 1000 DM",
    "A65": "desconocido / sin cuenta de ahorro",
    "A71": "desempleado",
    "A72": "< 1 año",
    "A73": "de 1 a < 4 años",
    "A74": "de 4 a < 7 años",
    "A75": ">= 7 años",
    "A101": "ninguno",
    "A102": "cosolicitante",
    "A103": "avalista",
    "A121": "inmuebles",
    "A122": "contrato de ahorro-vivienda / seguro de vida",
    "A123": "coche u otros, no en cuenta de ahorro",
    "A124": "desconocido / sin bienes",
    "A141": "banco",
    "A142": "comercios",
    "A143": "ninguno",
    "A151": "alquiler",
    "A152": "propia",
    "A153": "gratuita",
    "A171": "desempleado / no cualificado, no residente",
    "A172": "no cualificado, residente",
    "A173": "empleado cualificado / funcionario",
    "A174": "directivo / autónomo / empleado muy cualificado / oficial",
    "A191": "no",
    "A192": "sí, registrado a nombre del cliente",
}
FALLBACK_TEXT = {
    "en": "No factor that may be cited explains this rejection: only attributes the service "
    "never cites (protected) raised the risk above that of approved applicants. A person must "
    "review this decision.",
    "es": "Ningún factor que pueda citarse explica este rechazo: solo atributos que el servicio "
    "nunca cita (protegidos) elevaron el riesgo por encima del de los solicitantes aprobados. "
    "Una persona debe revisar esta decisión.",
}


def _short(attribute: Attribute) -> str:
    """The codebook's description without its parenthetical (e.g. the bands' explanation)."""
    return attribute.description.split(" (")[0]


def _entries() -> list[dict[str, Any]]:
    """The table's rows, derived from the codebook (English) and the translations above."""
    rows: list[dict[str, Any]] = []
    for attribute in ATTRIBUTES:
        if attribute.protected:
            continue
        prefix = f"R{attribute.uci_number:02d}"
        name_es = ATTRIBUTE_ES[attribute.name]
        if attribute.kind is Kind.CATEGORICAL:
            for code, label in attribute.codes.items():
                rows.append(
                    {
                        "code": f"{prefix}-{code}",
                        "attribute": attribute.name,
                        "condition": {"codes": [code]},
                        "condition_text": f"{attribute.name} = {code}",
                        "text": {
                            "en": f"{_short(attribute)}: {label}",
                            "es": f"{name_es}: {LABEL_ES[code]}",
                        },
                    }
                )
            continue
        assert attribute.minimum is not None and attribute.maximum is not None
        bands = NUMERIC_BANDS[attribute.name]
        for number, (low, label_en, label_es) in enumerate(bands, start=1):
            high = bands[number][0] - 1 if number < len(bands) else attribute.maximum
            english = label_en or attribute.label(low)
            condition = (
                f"{attribute.name} = {low}"
                if low == high
                else f"{low} <= {attribute.name} <= {high}"
            )
            rows.append(
                {
                    "code": f"{prefix}-B{number}",
                    "attribute": attribute.name,
                    "condition": {"min": low, "max": high},
                    "condition_text": condition,
                    "text": {
                        "en": f"{_short(attribute)}: {english}",
                        "es": f"{name_es}: {label_es}",
                    },
                }
            )
    rows.append(
        {
            "code": FALLBACK_CODE,
            "attribute": None,
            "condition": None,
            "condition_text": "rejected, and no attribute that may be cited raised the risk "
            "above the approved reference",
            "text": dict(FALLBACK_TEXT),
        }
    )
    return rows


def builtin_table() -> dict[str, Any]:
    """This package's reason-code table, as saved in a model folder."""
    return {
        "reason_codes_version": REASON_CODES_VERSION,
        "languages": list(LANGUAGES),
        "protected_attributes_cited": False,
        "codes": _entries(),
    }


def table_bytes(table: Mapping[str, Any]) -> bytes:
    """The table as the bytes of its file (UTF-8 JSON; the sha256 in metadata is of these)."""
    return (json.dumps(table, indent=1, ensure_ascii=False) + "\n").encode()


@functools.cache
def builtin_bytes() -> bytes:
    return table_bytes(builtin_table())


def table_sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def reason_codes_record() -> dict[str, str]:
    """What a model's ``metadata.json`` lists of this package's table (``reason_codes``)."""
    return {
        "version": REASON_CODES_VERSION,
        "file": REASON_CODES_FILE,
        "sha256": table_sha256(builtin_bytes()),
    }


class ReasonsUnavailable(ValueError):
    """A fitted model whose rejections cannot be given reasons by this method (see
    :func:`build_reference`): it must not be promoted or served."""


class ReasonCodesError(ValueError):
    """A reason-code table that cannot be used, with the field at fault."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True)
class ReasonCode:
    """One row of the table."""

    code: str
    attribute: str | None
    condition: Mapping[str, Any] | None
    condition_text: str
    text: Mapping[str, str]


def _require(condition: bool, field: str, problem: str) -> None:
    if not condition:
        raise ReasonCodesError(field, problem)


@dataclass(frozen=True)
class ReasonCodes:
    """A validated reason-code table and the lookup from an applicant's value to its code.

    Attributes:
        version: ``reason_codes_version``.
        codes: the rows, in table order.
        languages: the languages every row has a text in.
    """

    version: str
    codes: tuple[ReasonCode, ...]
    languages: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def builtin(cls) -> ReasonCodes:
        return cls.from_json(builtin_table())

    @classmethod
    def from_json(cls, table: Any) -> ReasonCodes:
        """Validate a table: known attributes and codes, none protected, every value covered.

        Raises:
            ReasonCodesError: naming the field at fault (e.g. ``codes[3].condition``).
        """
        _require(isinstance(table, Mapping), "(document)", "must be a JSON object")
        version = table.get("reason_codes_version")
        _require(
            isinstance(version, str) and bool(version),
            "reason_codes_version",
            "required, a non-empty string",
        )
        languages = table.get("languages")
        _require(
            isinstance(languages, list) and set(LANGUAGES) <= set(languages),
            "languages",
            f"must list at least {list(LANGUAGES)}",
        )
        rows = table.get("codes")
        _require(isinstance(rows, list) and bool(rows), "codes", "required, a non-empty list")
        codes: list[ReasonCode] = []
        covered: dict[str, list[tuple[int, int] | str]] = {}
        for index, row in enumerate(rows):
            where = f"codes[{index}]"
            _require(isinstance(row, Mapping), where, "must be an object")
            code, name = row.get("code"), row.get("attribute")
            _require(isinstance(code, str) and bool(code), f"{where}.code", "required string")
            text = row.get("text")
            _require(
                isinstance(text, Mapping)
                and all(isinstance(text.get(lang), str) and text[lang] for lang in languages),
                f"{where}.text",
                f"needs a non-empty text in each of {languages}",
            )
            condition = row.get("condition")
            if name is None:
                _require(code == FALLBACK_CODE, f"{where}.attribute", "required (an attribute)")
                _require(condition is None, f"{where}.condition", "must be null for the fallback")
            else:
                _require(name in BY_NAME, f"{where}.attribute", f"unknown attribute {name!r}")
                attribute = BY_NAME[name]
                _require(
                    not attribute.protected,
                    f"{where}.attribute",
                    f"{name} is protected and may never be a reason",
                )
                _require(isinstance(condition, Mapping), f"{where}.condition", "required object")
                covered.setdefault(name, []).extend(_condition(attribute, condition, where))
            codes.append(
                ReasonCode(
                    code=code,
                    attribute=name,
                    condition=condition,
                    condition_text=str(row.get("condition_text", "")),
                    text={lang: str(text[lang]) for lang in languages},
                )
            )
        names = [c.code for c in codes]
        duplicated = sorted({c for c in names if names.count(c) > 1})
        _require(not duplicated, "codes", f"duplicated codes {duplicated}")
        _require(names.count(FALLBACK_CODE) == 1, "codes", f"needs one {FALLBACK_CODE} row")
        for attribute in ATTRIBUTES:
            if not attribute.protected:
                _check_coverage(attribute, covered.get(attribute.name, []))
        return cls(str(version), tuple(codes), tuple(languages), raw=dict(table))

    @functools.cached_property
    def index(self) -> dict[str, int]:
        return {code.code: i for i, code in enumerate(self.codes)}

    @functools.cached_property
    def fallback(self) -> int:
        return self.index[FALLBACK_CODE]

    @functools.cached_property
    def _lookups(self) -> list[Any]:
        """Per attribute (codebook order): code -> row for categoricals, band bounds for
        numerics, None for protected attributes (never looked up)."""
        lookups: list[Any] = []
        for attribute in ATTRIBUTES:
            rows = [
                (i, c)
                for i, c in enumerate(self.codes)
                if c.attribute == attribute.name and c.condition
            ]
            if attribute.protected:
                lookups.append(None)
            elif attribute.kind is Kind.CATEGORICAL:
                lookups.append({v: i for i, c in rows for v in c.condition["codes"]})  # type: ignore[index]
            else:
                ordered = sorted(rows, key=lambda pair: pair[1].condition["min"])  # type: ignore[index]
                lows = [c.condition["min"] for _, c in ordered]  # type: ignore[index]
                lookups.append((lows, [i for i, _ in ordered]))
        return lookups

    def code_index(self, k: int, value: Any) -> int:
        """The row of attribute ``k``'s (codebook order) value ``value``."""
        lookup = self._lookups[k]
        if isinstance(lookup, dict):
            return lookup[str(value)]
        lows, rows = lookup
        return rows[bisect.bisect_right(lows, int(value)) - 1]

    def code_indices(self, k: int, values: np.ndarray) -> np.ndarray:
        """:meth:`code_index` for an array of values (validated applicants)."""
        lookup = self._lookups[k]
        if isinstance(lookup, dict):
            distinct, inverse = np.unique(np.asarray(values, dtype=str), return_inverse=True)
            rows = np.array([lookup[v] for v in distinct.tolist()], dtype=np.int64)
            return rows[inverse]
        lows, rows = lookup
        band = np.searchsorted(np.asarray(lows), np.asarray(values, dtype=np.int64), "right")
        return np.asarray(rows, dtype=np.int64)[band - 1]

    @functools.cached_property
    def texts(self) -> dict[str, tuple[str, ...]]:
        """Each language's texts, by row."""
        return {lang: tuple(c.text[lang] for c in self.codes) for lang in self.languages}

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)


def _condition(attribute: Attribute, condition: Mapping[str, Any], where: str) -> list[Any]:
    if attribute.kind is Kind.CATEGORICAL:
        values = condition.get("codes")
        _require(
            isinstance(values, list) and bool(values) and set(values) <= set(attribute.codes),
            f"{where}.condition.codes",
            f"must list codes of {attribute.name}: {list(attribute.codes)}",
        )
        return list(values)  # type: ignore[arg-type]
    low, high = condition.get("min"), condition.get("max")
    assert attribute.minimum is not None and attribute.maximum is not None
    _require(
        isinstance(low, int)
        and isinstance(high, int)
        and attribute.minimum <= low <= high <= attribute.maximum,
        f"{where}.condition",
        f"needs integer min <= max within {attribute.minimum}..{attribute.maximum}",
    )
    return [(low, high)]


def _check_coverage(attribute: Attribute, covered: list[Any]) -> None:
    """Every value of an attribute that may be cited has exactly one code."""
    field = f"codes ({attribute.name})"
    if attribute.kind is Kind.CATEGORICAL:
        missing = sorted(set(attribute.codes) - set(covered))
        twice = sorted({c for c in covered if covered.count(c) > 1})
        _require(not missing, field, f"no code for {missing}")
        _require(not twice, field, f"more than one code for {twice}")
        return
    bands = sorted(covered)
    expected = attribute.minimum
    for low, high in bands:
        _require(
            low == expected,
            field,
            f"bands must cover {attribute.minimum}..{attribute.maximum} without gaps or "
            f"overlaps (at {low})",
        )
        expected = high + 1
    _require(
        expected == (attribute.maximum or 0) + 1,
        field,
        f"bands must reach {attribute.maximum}",
    )


# --- the approved reference -------------------------------------------------------------------


@dataclass(frozen=True)
class ReasonReference:
    """The baseline the reasons are measured from: the approved applicants of the training data.

    Attributes:
        contributions: mean path contribution of each attribute (codebook order).
        raw_probability: the forest's raw score at the reference, ``bias + sum(contributions)``.
        probability_bad: the calibrated probability there (below the threshold).
        rows: how many approved training rows it averages.
    """

    contributions: tuple[float, ...]
    raw_probability: float
    probability_bad: float
    rows: int
    basis: str = "training rows the model approves"

    def to_json(self) -> dict[str, Any]:
        return {
            "basis": self.basis,
            "rows": self.rows,
            "raw_probability": self.raw_probability,
            "probability_bad": self.probability_bad,
            "contributions": dict(zip(FEATURE_NAMES, self.contributions, strict=True)),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReasonReference:
        contributions = data["contributions"]
        return cls(
            contributions=tuple(float(contributions[name]) for name in FEATURE_NAMES),
            raw_probability=float(data["raw_probability"]),
            probability_bad=float(data["probability_bad"]),
            rows=int(data["rows"]),
            basis=str(data.get("basis", cls.basis)),
        )


def logit(probability: np.ndarray) -> np.ndarray:
    clipped = np.clip(probability, _LOGIT_EPS, 1 - _LOGIT_EPS)
    return np.log(clipped) - np.log1p(-clipped)


def build_reference(pipeline: Any, applicants: Any, threshold: float) -> ReasonReference:
    """The approved reference of a fitted pipeline over its training rows.

    Args:
        pipeline: the fitted pipeline (a forest, calibrated with one calibrator or bare).
        applicants: its training rows.
        threshold: the decision threshold (reject when the probability is at least this).

    Raises:
        ReasonsUnavailable: the calibrator is not non-decreasing, or there are several (the
            argument of the module docstring needs one monotone map), or the model approves
            none of its training rows (no approved reference exists).
    """
    from credit_risk.fastpath import calibrate, components, reference_contributions

    found = components(pipeline)
    if len(found) != 1:
        raise ReasonsUnavailable(
            f"reasons need one forest and at most one calibrator, not {len(found)} "
            "(CalibratedClassifierCV(ensemble=False))"
        )
    forest, calibrator = found[0]
    if calibrator is not None and not _non_decreasing(calibrator):
        raise ReasonsUnavailable("the calibrator is not non-decreasing in the forest's score")
    probability = pipeline.predict_proba(applicants)[:, 1]
    approved = probability < threshold
    if not approved.any():
        raise ReasonsUnavailable(
            f"the model approves none of its training applicants at threshold {threshold:.4g}"
        )
    contributions = reference_contributions(pipeline, applicants[approved])
    mean = contributions.mean(axis=0)
    encoded = pipeline[:-1].transform(applicants[approved])
    raw = float(forest.predict_proba(encoded)[:, 1].mean())
    reference_probability = float(calibrate(np.array([raw]), calibrator)[0])
    if not reference_probability < threshold:  # cannot happen for a monotone calibrator
        raise ReasonsUnavailable(
            f"the approved reference scores {reference_probability} >= threshold {threshold}"
        )
    return ReasonReference(
        contributions=tuple(float(v) for v in mean),
        raw_probability=raw,
        probability_bad=reference_probability,
        rows=int(approved.sum()),
    )


def _non_decreasing(calibrator: Mapping[str, Any]) -> bool:
    if calibrator["kind"] == "sigmoid":  # 1 / (1 + exp(a f + b)) grows with f when a <= 0
        return bool(calibrator["a"] <= 0)
    return bool(np.all(np.diff(np.asarray(calibrator["y"], dtype=float)) >= 0))


# --- ranking ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Explainer:
    """Ranks adverse reasons against a model's reference (see the module docstring).

    Attributes:
        reference: the approved reference.
        codes: the reason-code table.
        threshold: reject when the probability of bad is at least this.
    """

    reference: ReasonReference
    codes: ReasonCodes
    threshold: float
    limit: int = MAX_REASONS
    unit: ClassVar[str] = UNIT_LOG_ODDS

    @functools.cached_property
    def _reference(self) -> np.ndarray:
        return np.asarray(self.reference.contributions, dtype=np.float64)

    @functools.cached_property
    def _citable(self) -> np.ndarray:
        return np.array([not a.protected for a in ATTRIBUTES])

    @functools.cached_property
    def _reference_logit(self) -> float:
        return float(logit(np.array([self.reference.probability_bad]))[0])

    def rank(
        self, probability: np.ndarray, contributions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The reasons of each row: attributes (or :data:`FALLBACK`) and served contributions.

        Args:
            probability: ``(n,)`` calibrated probabilities of bad.
            contributions: ``(n, 20)`` path contributions (root baseline).

        Returns:
            ``(n, limit)`` attribute indices, largest served contribution first,
            :data:`NO_REASON` in unused slots and for approvals, :data:`FALLBACK` in slot 0
            of a rejection no attribute that may be cited explains; and ``(n, limit)`` the
            contributions on the calibrated log-odds scale (the fallback's: the whole
            distance ``logit(p) - logit(p_ref)``).
        """
        n = len(probability)
        top = np.full((n, self.limit), NO_REASON, dtype=np.int64)
        served = np.zeros((n, self.limit), dtype=np.float64)
        rows = np.flatnonzero(probability >= self.threshold)
        if not len(rows):
            return top, served
        shifted = contributions[rows].astype(np.float64) - self._reference
        gap = shifted.sum(axis=1)  # f - f_ref > 0 for a rejection
        distance = logit(np.asarray(probability[rows], dtype=np.float64)) - self._reference_logit
        scale = np.divide(distance, gap, out=np.zeros_like(gap), where=gap > 0)
        citable = np.where(self._citable, shifted, -np.inf)
        order = np.argsort(-citable, axis=1, kind="stable")[:, : self.limit]
        picked = np.take_along_axis(citable, order, axis=1)
        keep = picked > 0
        top[rows] = np.where(keep, order, NO_REASON)
        served[rows] = np.where(keep, picked * scale[:, None], 0.0)
        unexplained = ~keep[:, 0]
        top[rows[unexplained], 0] = FALLBACK
        served[rows[unexplained], 0] = distance[unexplained]
        return top, served

    # Rejections up to which rank_records ranks row by row in plain Python: for a request's
    # few rows, some 30 numpy calls cost more than the arithmetic on 20 numbers.
    PYTHON_ROWS: ClassVar[int] = 16

    @functools.cached_property
    def _scalars(self) -> tuple[list[float], list[int], float]:
        citable = [k for k, a in enumerate(ATTRIBUTES) if not a.protected]
        return list(self.reference.contributions), citable, self._reference_logit

    def rank_records(
        self, probability: Sequence[float], contributions: np.ndarray
    ) -> list[list[tuple[int, float]]]:
        """:meth:`rank` as lists: per row, ``(attribute index or FALLBACK, served
        contribution)`` of each reason, largest first; empty for an approval.

        A few rejections (a request) are ranked row by row in Python, more in numpy; both
        give the same reasons (``tests/test_reasons.py`` compares them on every row).
        """
        threshold = self.threshold
        rejected = [i for i, p in enumerate(probability) if p >= threshold]
        ranked: list[list[tuple[int, float]]] = [[] for _ in probability]
        if len(rejected) > self.PYTHON_ROWS:
            top, served = self.rank(np.asarray(probability), contributions)
            for i in rejected:
                ranked[i] = [
                    (k, amount)
                    for k, amount in zip(top[i].tolist(), served[i].tolist(), strict=True)
                    if k != NO_REASON
                ]
            return ranked
        reference, citable, reference_logit = self._scalars
        for i in rejected:
            row = contributions[i].tolist()
            shifted = [value - base for value, base in zip(row, reference, strict=True)]
            gap = math.fsum(shifted)
            p = min(max(probability[i], _LOGIT_EPS), 1 - _LOGIT_EPS)
            distance = math.log(p) - math.log1p(-p) - reference_logit
            scale = distance / gap if gap > 0 else 0.0
            raised = sorted(
                ((shifted[k], k) for k in citable if shifted[k] > 0),
                key=lambda pair: (-pair[0], pair[1]),
            )[: self.limit]
            ranked[i] = (
                [(k, amount * scale) for amount, k in raised] if raised else [(FALLBACK, distance)]
            )
        return ranked

    def code_row(self, k: int, record: Mapping[str, Any]) -> int:
        """The table row of reason ``k`` (an attribute index or FALLBACK) for an applicant."""
        return _code_row(self.codes, k, record)


def _code_row(codes: ReasonCodes, k: int, record: Mapping[str, Any]) -> int:
    if k == FALLBACK:
        return codes.fallback
    return codes.code_index(k, record[ATTRIBUTES[k].name])


@dataclass(frozen=True)
class PointsExplainer:
    """Ranks a points scorecard's adverse reasons: points lost against each best bin.

    The same interface as :class:`Explainer` (``rank``, ``rank_records``, ``code_row``); the
    contributions it ranks are the points lost per attribute (``best bin's points - the
    applicant's``, 0 where the attribute earns no points), and so are the amounts it reports.

    Attributes:
        codes: the reason-code table (the code of a reason is that of the applicant's value).
        threshold: reject when the probability of bad is at least this.
    """

    codes: ReasonCodes
    threshold: float
    limit: int = MAX_REASONS
    unit: ClassVar[str] = UNIT_POINTS

    @functools.cached_property
    def _citable(self) -> np.ndarray:
        return np.array([not a.protected for a in ATTRIBUTES])

    def rank(self, probability: np.ndarray, lost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The reasons of each row: attributes (or :data:`FALLBACK`) and points lost.

        Args:
            probability: ``(n,)`` calibrated probabilities of bad.
            lost: ``(n, 20)`` points lost against each attribute's best bin (codebook order).

        Returns:
            ``(n, limit)`` attribute indices, most points lost first (ties in codebook order),
            :data:`NO_REASON` in unused slots and for approvals, :data:`FALLBACK` in slot 0 of
            a rejection that lost points on protected attributes only; and ``(n, limit)`` the
            points lost (the fallback's: all points lost).
        """
        n = len(probability)
        top = np.full((n, self.limit), NO_REASON, dtype=np.int64)
        served = np.zeros((n, self.limit), dtype=np.float64)
        rows = np.flatnonzero(np.asarray(probability) >= self.threshold)
        if not len(rows):
            return top, served
        below = np.asarray(lost, dtype=np.float64)[rows]
        citable = np.where(self._citable, below, -np.inf)
        order = np.argsort(-citable, axis=1, kind="stable")[:, : self.limit]
        picked = np.take_along_axis(citable, order, axis=1)
        keep = picked > 0
        top[rows] = np.where(keep, order, NO_REASON)
        served[rows] = np.where(keep, picked, 0.0)
        unexplained = ~keep[:, 0]
        top[rows[unexplained], 0] = FALLBACK
        served[rows[unexplained], 0] = below[unexplained].sum(axis=1)
        return top, served

    def rank_records(
        self, probability: Sequence[float], lost: np.ndarray
    ) -> list[list[tuple[int, float]]]:
        """:meth:`rank` as lists: per row, ``(attribute index or FALLBACK, points lost)`` of
        each reason, most first; empty for an approval (same order as :meth:`rank`)."""
        citable = [k for k, a in enumerate(ATTRIBUTES) if not a.protected]
        ranked: list[list[tuple[int, float]]] = [[] for _ in probability]
        for i, p in enumerate(probability):
            if p < self.threshold:
                continue
            row = [float(v) for v in lost[i].tolist()]
            raised = sorted(
                ((row[k], k) for k in citable if row[k] > 0), key=lambda pair: (-pair[0], pair[1])
            )[: self.limit]
            ranked[i] = (
                [(k, amount) for amount, k in raised] if raised else [(FALLBACK, math.fsum(row))]
            )
        return ranked

    def code_row(self, k: int, record: Mapping[str, Any]) -> int:
        """The table row of reason ``k`` (an attribute index or FALLBACK) for an applicant."""
        return _code_row(self.codes, k, record)
