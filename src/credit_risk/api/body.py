"""Reading a predict request's body in bounded time: structure, repeated keys, validation.

Whatever a client sends, reading it costs the server a few milliseconds at most, and the
errors it reports are capped (issue 11). In order:

1. :func:`check_structure` counts the body's ``{``, ``[``, ``:`` and ``,`` bytes (in C) against
   what the largest valid request can hold (the codebook decides: labels may contain ``:`` or
   ``,``). More means it cannot be valid, and it is refused before any JSON object is built:
   hundreds of thousands of keys or nested arrays otherwise cost seconds to parse and validate.
2. The common case, a valid body, is validated in one pass over the bytes by the generated
   models (extra keys ignored there), then its ``:`` count is compared with the keys a valid
   body has: any extra or repeated key shows up as a difference.
3. Anything else is read carefully (:func:`_read_carefully`): strict UTF-8, a JSON parser
   that records repeated keys, extra keys counted and the first few named, each applicant
   validated on its own, and at most ``max_errors`` errors listed, with the count of the rest.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from credit_risk.api.models import Applicant, applicant_model, batch_request_model
from credit_risk.schema import ATTRIBUTES, FEATURE_NAMES, Kind

Loc = tuple[str | int, ...]
ErrorDict = dict[str, Any]

_NAMES = frozenset(FEATURE_NAMES)
BATCH_KEY = "applicants"
# Characters whose number bounds the work of parsing: objects, arrays, keys, values.
_COUNTED = {b"{": "objects", b"[": "arrays", b":": "keys", b",": "values"}
# Extra keys named in a refusal, from the start of the body.
_NAMED_KEYS = 5
_KEY_SCAN_BYTES = 65536
_KEY = re.compile(rb'"((?:[^"\\]|\\.){1,100})"\s*:')


@dataclass(frozen=True)
class BodyRules:
    """What a body must be: one applicant, or a batch of 1 to ``max_batch``.

    Attributes:
        batch: ``{"applicants": [...]}`` rather than one applicant object.
        max_batch: the batch size limit (setting ``max_batch``).
        max_errors: errors listed in a 422; the rest are only counted.
    """

    batch: bool
    max_batch: int
    max_errors: int


class InvalidBody(Exception):
    """The body is not a valid request: pydantic-style errors (capped) and how many more."""

    def __init__(self, errors: list[ErrorDict], omitted: int = 0) -> None:
        super().__init__(f"{len(errors) + omitted} errors")
        self.errors = errors
        self.omitted = omitted


def _per_applicant_counts() -> dict[bytes, int]:
    """The most of each counted character one valid applicant object can hold (with its ``,``
    separator in a list): the structure's, plus the most any accepted label carries."""
    counts = {b"{": 1, b"[": 0, b":": len(ATTRIBUTES), b",": len(ATTRIBUTES)}
    for attribute in ATTRIBUTES:
        if attribute.kind is Kind.CATEGORICAL:
            accepted = (*attribute.codes, *attribute.codes.values())
            for char in counts:
                counts[char] += max(text.count(char.decode()) for text in accepted)
    return counts


_PER_APPLICANT = _per_applicant_counts()
_BATCH_WRAPPER = {b"{": 1, b"[": 1, b":": 1, b",": 0}
# Room for a few mistakes (an array given for a value, a stray key) to be reported field by
# field rather than refused as a whole: per applicant, and per body.
_SLACK_PER_APPLICANT = {b"{": 1, b"[": 1, b":": 2, b",": 2}
_SLACK = 64


def structure_limits(rules: BodyRules) -> dict[bytes, int]:
    """The most of each counted character accepted in a body (whitespace aside).

    What a valid body can hold, with some slack (so that a batch a little over the limit is
    still told so in the list's own words, "at most N items"). The work of parsing a body
    stays proportional to it.
    """
    rows, wrapper = (rules.max_batch, _BATCH_WRAPPER) if rules.batch else (1, {})
    return {
        char: rows * (count + _SLACK_PER_APPLICANT[char]) + wrapper.get(char, 0) + _SLACK
        for char, count in _PER_APPLICANT.items()
    }


def largest_applicant_bytes() -> int:
    """Size of the largest valid applicant object: longest values, pretty-printed, escaped."""
    longest: dict[str, Any] = {}
    for attribute in ATTRIBUTES:
        if attribute.kind is Kind.CATEGORICAL:
            texts = (*attribute.codes, *attribute.codes.values())
            longest[attribute.name] = max(texts, key=lambda text: len(json.dumps(text)))
        else:
            longest[attribute.name] = max(
                (attribute.minimum, attribute.maximum), key=lambda n: len(str(n))
            )
    return len(json.dumps(longest, indent=4).encode())


def default_body_limit(max_batch: int) -> int:
    """Twice the largest valid batch of ``max_batch`` applicants, plus 64 KiB of headroom."""
    return 2 * max_batch * largest_applicant_bytes() + 65536


def _unexpected_keys(body: bytes) -> list[str]:
    """The first few keys at the start of the body that are not attributes (a hint only)."""
    found: list[str] = []
    for match in _KEY.finditer(body, 0, _KEY_SCAN_BYTES):
        key = match.group(1).decode("utf-8", "replace")
        if key not in _NAMES and key != BATCH_KEY and key not in found:
            found.append(key[:40])
            if len(found) == _NAMED_KEYS:
                break
    return found


def check_structure(body: bytes, rules: BodyRules) -> int:
    """Refuse a body with more objects, arrays, keys or values than a valid request holds.

    Returns:
        The body's number of ``:`` (an upper bound of its keys), used to spot extra keys.

    Raises:
        InvalidBody: one ``body_too_complex`` error saying what there is too much of.
    """
    limits = structure_limits(rules)
    colons = 0
    for char, what in _COUNTED.items():
        found = body.count(char)
        if char == b":":
            colons = found
        if found > limits[char]:
            shape = f"a batch of at most {rules.max_batch}" if rules.batch else "one applicant"
            message = (
                f"the body holds {found} {what} ({char.decode()!r}), more than the "
                f"{limits[char]} accepted for {shape}"
            )
            keys = _unexpected_keys(body) if char == b":" else []
            if keys:
                message += "; unexpected keys include " + ", ".join(repr(k) for k in keys)
            error = {"type": "body_too_complex", "loc": ("body",), "msg": message, "input": None}
            raise InvalidBody([error])
    return colons


# Validation in one pass over the bytes; extra keys are ignored here and found by counting.
_LenientApplicant = applicant_model("ApplicantFields", extra="ignore")


@functools.lru_cache(maxsize=8)
def _lenient_batch(max_batch: int) -> type[BaseModel]:
    # The first invalid applicant is enough to know the body needs a careful read.
    return batch_request_model(max_batch, _LenientApplicant, "BatchFields", "ignore", True)


@functools.lru_cache(maxsize=8)
def _batch_shape(max_batch: int) -> type[BaseModel]:
    """The batch wrapper alone (applicants unchecked), for its errors in FastAPI's words."""
    return batch_request_model(max_batch, Any)


def read_applicants(body: bytes, rules: BodyRules) -> list[dict[str, Any]]:
    """The validated applicants of a request body (codes and integers, as ``model_dump``).

    Raises:
        InvalidBody: the body is not a valid request; at most ``rules.max_errors`` errors.
    """
    colons = check_structure(body, rules)
    model = _lenient_batch(rules.max_batch) if rules.batch else _LenientApplicant
    try:
        parsed = model.model_validate_json(body)
    except ValidationError:
        # Raises InvalidBody; returns only if the standard parser reads valid applicants
        # where the one-pass parser refused the document (e.g. a NaN in an ignored spot).
        return _read_carefully(body, rules, values_valid=False)
    applicants = parsed.applicants if rules.batch else [parsed]  # type: ignore[attr-defined]
    keys = len(applicants) * len(ATTRIBUTES) + (1 if rules.batch else 0)
    if colons != keys:  # an extra or repeated key (or a label with a colon): look closely
        _read_carefully(body, rules, values_valid=True)
    return [applicant.model_dump() for applicant in applicants]


@dataclass
class _Errors:
    """Errors listed up to a cap; beyond it only counted."""

    cap: int
    listed: list[ErrorDict] = field(default_factory=list)
    total: int = 0

    def room(self) -> int:
        return self.cap - len(self.listed)

    def add(self, error: ErrorDict) -> None:
        self.total += 1
        if self.room() > 0:
            self.listed.append(error)

    def validate(self, model: type[BaseModel], value: Any, prefix: Loc) -> BaseModel | None:
        """``value`` validated by ``model``, or None with its errors recorded under ``prefix``."""
        try:
            return model.model_validate(value)
        except ValidationError as error:
            for item in error.errors(include_url=False, include_context=False):
                self.add({**item, "loc": (*prefix, *item["loc"])})
            return None


def _first_repeated(items: list[tuple[str, Any]]) -> str:
    seen: set[str] = set()
    for key, _ in items:
        if key in seen:
            return key
        seen.add(key)
    return ""


def _invalid_json(message: str, position: int | None = None) -> InvalidBody:
    loc: Loc = ("body",) if position is None else ("body", position)
    error = {"type": "json_invalid", "loc": loc, "msg": "JSON decode error", "input": {}}
    return InvalidBody([{**error, "ctx": {"error": message}}])


def _parse(body: bytes) -> tuple[Any, dict[int, str]]:
    """The JSON document (strict UTF-8), and the first repeated key of each object, by id."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _invalid_json(f"not UTF-8 text (byte {error.start})") from None
    repeated: dict[int, str] = {}
    kept: list[dict[str, Any]] = []  # an id stays unique only while its object lives

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            repeated[id(obj)] = _first_repeated(items)
            kept.append(obj)
        return obj

    try:
        return json.loads(text, object_pairs_hook=pairs), repeated
    except json.JSONDecodeError as error:
        raise _invalid_json(error.msg, error.pos) from None
    except RecursionError:
        raise _invalid_json("nested too deeply") from None
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise _invalid_json(str(error)[:100]) from None


def _read_carefully(body: bytes, rules: BodyRules, values_valid: bool) -> list[dict[str, Any]]:
    """Find what is wrong with a body, applicant by applicant; raise it as :class:`InvalidBody`.

    Args:
        values_valid: the one-pass validation accepted the values, so only keys (extra or
            repeated) can be wrong; else every applicant is validated until ``max_errors``
            errors are listed, and the rest are counted.

    Returns:
        When the body is valid after all (e.g. a label with a ``:`` in it): the applicants
        (none when ``values_valid``: the caller has them).
    """
    document, repeated = _parse(body)
    errors = _Errors(rules.max_errors)
    rows: list[tuple[Loc, Any]] = [(("body",), document)]
    if rules.batch:
        rows = _batch_rows(document, rules, errors, repeated)
    records = []
    for prefix, row in rows:
        if values_valid:
            _check_keys(row, _NAMES, prefix, errors, repeated)
        elif errors.room() > 0:
            records.append(_read_applicant(row, prefix, errors, repeated))
        else:  # listing is over: count, without building an error object per problem
            errors.total += _count_problems(row, repeated)
    if errors.total:
        raise InvalidBody(errors.listed, errors.total - len(errors.listed))
    return records


def _check_keys(
    obj: dict[str, Any],
    known: frozenset[str],
    prefix: Loc,
    errors: _Errors,
    repeated: dict[int, str],
) -> None:
    """Errors for a repeated key and for keys outside ``known`` (the first few named)."""
    if id(obj) in repeated:
        key = repeated[id(obj)]
        message = "Key given more than once in the same object; give each key once"
        errors.add({"type": "duplicate_key", "loc": (*prefix, key), "msg": message, "input": None})
    extra = len(obj) - len(obj.keys() & known)
    if not extra:
        return
    named = 0
    for key in obj:
        if named >= min(extra, errors.room()):
            break
        if key not in known:
            message = "Extra inputs are not permitted"
            error = {"type": "extra_forbidden", "loc": (*prefix, key), "msg": message}
            errors.add({**error, "input": obj[key]})
            named += 1
    errors.total += extra - named


def _batch_rows(
    document: Any, rules: BodyRules, errors: _Errors, repeated: dict[int, str]
) -> list[tuple[Loc, Any]]:
    """The applicants of a batch, or none when its wrapper is wrong (errors recorded)."""
    if isinstance(document, dict):
        _check_keys(document, frozenset({BATCH_KEY}), ("body",), errors, repeated)
        wrapper = {BATCH_KEY: document[BATCH_KEY]} if BATCH_KEY in document else {}
    else:
        wrapper = document
    if errors.validate(_batch_shape(rules.max_batch), wrapper, ("body",)) is None:
        return []
    applicants: list[Any] = wrapper[BATCH_KEY]
    return [(("body", BATCH_KEY, i), row) for i, row in enumerate(applicants)]


def _read_applicant(
    row: Any, prefix: Loc, errors: _Errors, repeated: dict[int, str]
) -> dict[str, Any]:
    """One applicant validated (the attributes present), its extra or repeated keys reported.

    Returns:
        The applicant as ``model_dump`` (meaningful only when no error was recorded).
    """
    if not isinstance(row, dict):
        errors.validate(Applicant, row, prefix)
        return {}
    fields = (
        row if len(row) == len(row.keys() & _NAMES) else {n: row[n] for n in _NAMES & row.keys()}
    )
    applicant = errors.validate(Applicant, fields, prefix)
    _check_keys(row, _NAMES, prefix, errors, repeated)
    return applicant.model_dump() if applicant is not None else {}


# What the generated models accept (see credit_risk.api.models), for counting past the cap:
# a code or label of a categorical attribute; a whole number in range (not a bool) otherwise.
_CATEGORICAL = [
    (a.name, frozenset((*a.codes, *a.codes.values())))
    for a in ATTRIBUTES
    if a.kind is Kind.CATEGORICAL
]
_NUMERIC = [(a.name, a.minimum, a.maximum) for a in ATTRIBUTES if a.kind is Kind.NUMERIC]
_ABSENT = object()


def _count_problems(row: Any, repeated: dict[int, str]) -> int:
    """How many errors validating this applicant gives, counted without building them."""
    if not isinstance(row, dict):
        return 1
    problems = len(row) - len(row.keys() & _NAMES) + (id(row) in repeated)
    for name, accepted in _CATEGORICAL:
        value = row.get(name, _ABSENT)
        if type(value) is not str or value not in accepted:
            problems += 1
    for name, low, high in _NUMERIC:
        value = row.get(name, _ABSENT)
        if type(value) is float and value.is_integer():
            value = int(value)
        if type(value) is not int or not low <= value <= high:  # type: ignore[operator]
            problems += 1
    return problems
