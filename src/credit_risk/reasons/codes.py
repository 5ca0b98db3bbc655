"""The reason-code table: its constants, rows derived from the codebook and the translations,
its bytes and digest, and the validated table (:class:`ReasonCodes`).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from credit_risk.reasons.texts import ATTRIBUTE_ES, FALLBACK_TEXT, LABEL_ES, NUMERIC_BANDS
from credit_risk.schema import ATTRIBUTES, BY_NAME, Attribute, Kind

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


def _short(attribute: Attribute) -> str:
    """The codebook's description without its parenthetical (e.g. the bands' explanation)."""
    return attribute.description.split(" (")[0]


def _entries() -> list[dict[str, Any]]:
    """The table's rows, derived from the codebook (English) and the translations
    (:mod:`credit_risk.reasons.texts`)."""
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
