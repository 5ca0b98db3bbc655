"""Realised outcomes: recorded once, never overwritten silently, all or nothing, and read back."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from credit_risk.cli import app
from credit_risk.decision_log import (
    SCHEMA_VERSION,
    SchemaVersionError,
    decision_row,
    decisions_table,
    make_engine,
    outcomes_table,
    schema_table,
    schema_version,
    upgrade_schema,
)
from credit_risk.outcomes import (
    LABELLED_COLUMNS,
    ConflictingOutcomes,
    InvalidOutcomes,
    Outcome,
    UnknownRequests,
    import_outcomes,
    labelled_decisions,
    parse_outcomes,
    read_decisions_with_outcomes,
    read_outcomes_file,
    record_outcomes,
)
from credit_risk.schema import ATTRIBUTES, FEATURE_NAMES
from tests.api.conftest import POSTGRES_URL
from tests.released_logs import V1_LOG, copied_log, start_and_stop_service_log

APPLICANT = {a.name: a.default for a in ATTRIBUTES}
DECIDED = datetime(2025, 1, 10, 12, 0, tzinfo=UTC)
runner = CliRunner()


def log_decisions(engine: Engine, ids: list[str], decided: datetime = DECIDED) -> None:
    """Decisions as the service logs them, one a day from ``decided``."""
    rows = [
        decision_row(
            request_id,
            decided + timedelta(days=i),
            "7",
            {**APPLICANT, "duration_months": 6 + i},
            0.05 + 0.01 * i,
            1,
            "approve",
            1 / 6,
            [],
        )
        for i, request_id in enumerate(ids)
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(decisions_table), rows)


def stored(engine: Engine) -> dict[str, tuple[int, datetime, int]]:
    table = outcomes_table
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(table.c.request_id, table.c.outcome, table.c.observed_at, table.c.revision)
        )
        return {
            r.request_id: (r.outcome, r.observed_at.replace(tzinfo=None), r.revision) for r in rows
        }


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'decisions.db'}")
    upgrade_schema(engine)
    log_decisions(engine, ["a", "b", "c"])
    yield engine
    engine.dispose()


def outcome(request_id: str, value: int, day: int = 20) -> Outcome:
    return Outcome(request_id, value, datetime(2025, 2, day, tzinfo=UTC), request_id)


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_record_outcomes_same_value_twice_is_unchanged(engine: Engine) -> None:
    first = record_outcomes(engine, [outcome("a", 1), outcome("b", 2)])
    assert first.counts() == {"recorded": 2, "replaced": 0, "unchanged": 0}
    again = record_outcomes(engine, [outcome("a", 1), outcome("a", 1), outcome("c", 2)])
    assert again.statuses == [("a", "unchanged"), ("a", "unchanged"), ("c", "recorded")]
    assert {k: v[0] for k, v in stored(engine).items()} == {"a": 1, "b": 2, "c": 2}


def test_record_outcomes_conflict_never_overwrites_silently(engine: Engine) -> None:
    record_outcomes(engine, [outcome("a", 1), outcome("b", 1)])
    before = stored(engine)
    for conflicting in ([outcome("c", 2), outcome("a", 2)], [outcome("b", 1, day=21)]):
        with pytest.raises(ConflictingOutcomes) as refused:
            record_outcomes(engine, conflicting)
        assert conflicting[-1].request_id in str(refused.value)
        assert "already has good" in str(refused.value)
    assert stored(engine) == before  # "c" was not recorded either: one transaction

    replaced = record_outcomes(engine, [outcome("a", 2)], replace=True)
    assert replaced.statuses == [("a", "replaced")]
    assert stored(engine)["a"][0] == 2
    assert stored(engine)["a"][2] == 2  # the revision counts replacements


def test_record_outcomes_unknown_id_is_named_and_nothing_is_recorded(engine: Engine) -> None:
    with pytest.raises(UnknownRequests) as refused:
        record_outcomes(engine, [outcome("a", 1), outcome("nobody-7", 2)])
    assert "'nobody-7' is not a decision in the log" in str(refused.value)
    assert stored(engine) == {}


def test_record_outcomes_reports_unknown_ids_with_every_other_problem(engine: Engine) -> None:
    parsed = parse_outcomes(
        [
            ("line 2", {"request_id": "a", "outcome": "good", "observed_at": "2025-02-01"}),
            ("line 3", {"request_id": "ghost", "outcome": "bad", "observed_at": "2025-02-01"}),
            ("line 4", {"request_id": "b", "outcome": "meh", "observed_at": "2025-02-01"}),
            ("line 5", {"request_id": "spook", "outcome": "meh", "observed_at": "2025-02-01"}),
        ]
    )
    with pytest.raises(UnknownRequests) as refused:
        record_outcomes(engine, parsed)
    problems = [(p.where, p.field, p.kind) for p in refused.value.problems]
    assert problems == [
        ("line 3", "request_id", "unknown_request_id"),
        ("line 5", "request_id", "unknown_request_id"),
        ("line 4", "outcome", "value_error"),
        ("line 5", "outcome", "value_error"),
    ]
    assert "2 unknown request id(s) and 2 invalid value(s)" in str(refused.value)
    assert stored(engine) == {}


def test_record_outcomes_refuses_observation_before_the_decision(engine: Engine) -> None:
    early = Outcome("a", 1, DECIDED - timedelta(minutes=1), "outcomes[0]")
    with pytest.raises(InvalidOutcomes, match="before the decision on 'a'"):
        record_outcomes(engine, [early])
    assert stored(engine) == {}


def test_record_outcomes_refuses_one_id_given_twice_differently(engine: Engine) -> None:
    with pytest.raises(InvalidOutcomes, match="'a' is given again with a different outcome"):
        record_outcomes(engine, [outcome("a", 1), outcome("a", 2)], replace=True)
    assert stored(engine) == {}


@pytest.mark.parametrize(
    ("value", "code"),
    [("good", 1), ("bad", 2), ("GOOD", 1), (" bad ", 2), ("1", 1), ("2", 2), (1, 1), (2, 2)],
)
def test_parse_outcomes_accepts_labels_and_codes(value: Any, code: int) -> None:
    (parsed,) = parse_outcomes(
        [("x", {"request_id": "a", "outcome": value, "observed_at": "2025-02-01"})]
    ).valid()
    assert parsed.outcome == code
    assert parsed.observed_at == datetime(2025, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("item", "field", "says"),
    [
        ({"outcome": "maybe"}, "outcome", '"good" or "bad"'),
        ({"outcome": True}, "outcome", "not an allowed value"),
        ({"outcome": 3}, "outcome", "not an allowed value"),
        ({"outcome": 1.0}, "outcome", "not an allowed value"),
        ({"observed_at": "31/01/2025"}, "observed_at", "ISO 8601"),
        ({"observed_at": 20250131}, "observed_at", "not a date"),
        ({"observed_at": "2999-01-01"}, "observed_at", "in the future"),
        ({"request_id": 12}, "request_id", "not a request id"),
        ({"observed_at": "9999-12-31T23:00:00-05:00"}, "observed_at", "not a date"),
        ({"request_id": "x" * 65}, "request_id", "1 to 64 visible ASCII characters"),
        ({"request_id": "a\x00b"}, "request_id", "not a request id"),
        ({"request_id": "with space"}, "request_id", "visible ASCII"),
        ({"request_id": None}, "request_id", "missing"),
        ({"extra": 1}, "extra", "unexpected field"),
    ],
)
def test_parse_outcomes_names_field_and_allowed_values(
    item: dict[str, Any], field: str, says: str
) -> None:
    raw = {"request_id": "a", "outcome": "good", "observed_at": "2025-02-01T10:00:00+01:00"}
    raw.update(item)
    with pytest.raises(InvalidOutcomes) as refused:
        parse_outcomes([("outcomes[4]", raw)]).valid()
    (problem,) = refused.value.problems
    assert (problem.where, problem.field) == ("outcomes[4]", field)
    assert says in problem.text()


def test_read_outcomes_file_names_every_bad_line(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "o.csv",
        "request_id,outcome,observed_at\n"
        "a,good,2025-02-01\n"
        "\n"
        "b,excellent,2025-02-01\n"
        "c,bad\n"
        "d,1,yesterday\n",
    )
    with pytest.raises(InvalidOutcomes) as refused:
        read_outcomes_file(path).valid()
    text = str(refused.value)
    assert "line 4, outcome: 'excellent' is not an allowed value" in text
    assert "line 5: 2 field(s), expected 3" in text
    assert "line 6, observed_at: 'yesterday'" in text
    assert "line 2" not in text


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "no header line"),
        (b"id,outcome,observed_at\na,good,2025-02-01\n", "missing column(s) request_id"),
        (b"request_id,outcome,observed_at,note\n", "unexpected column(s) 'note'"),
        (b"request_id,outcome,observed_at\n", "no outcomes given"),
        (b"request_id,outcome,observed_at\na,good,2025-02-01\nb,\xe9,2025-02-01\n", "line 3"),
    ],
)
def test_read_outcomes_file_refuses_malformed_files(
    tmp_path: Path, content: bytes, says: str
) -> None:
    path = tmp_path / "o.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidOutcomes) as refused:
        read_outcomes_file(path).valid()
    assert says in str(refused.value)


def test_read_outcomes_file_takes_any_column_order_and_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_bytes(
        "\ufeffoutcome,observed_at,request_id\r\n2,2025-02-01T09:30:00Z,a\r\n".encode()
    )
    (parsed,) = read_outcomes_file(path).valid()
    assert (parsed.request_id, parsed.outcome, parsed.where) == ("a", 2, "line 2")
    assert parsed.observed_at == datetime(2025, 2, 1, 9, 30, tzinfo=UTC)


def test_outcomes_import_cli_all_or_nothing(engine: Engine, tmp_path: Path) -> None:
    url = str(engine.url)
    good = write_csv(tmp_path / "good.csv", "request_id,outcome,observed_at\na,good,2025-02-01\n")
    result = runner.invoke(app, ["outcomes", "import", str(good), "--log-url", url])
    assert result.exit_code == 0, result.output
    assert "1 recorded, 0 replaced, 0 unchanged" in result.output
    result = runner.invoke(app, ["outcomes", "import", str(good), "--log-url", url])
    assert "0 recorded, 0 replaced, 1 unchanged" in result.output

    bad = write_csv(
        tmp_path / "bad.csv",
        "request_id,outcome,observed_at\nb,bad,2025-02-01\nc,2,2025-02-01\nzz-9,1,2025-02-01\n",
    )
    result = runner.invoke(app, ["outcomes", "import", str(bad), "--log-url", url])
    assert result.exit_code == 2
    assert "line 4, request_id: 'zz-9' is not a decision in the log" in result.output
    assert set(stored(engine)) == {"a"}

    conflict = write_csv(
        tmp_path / "conflict.csv",
        "request_id,outcome,observed_at\nb,1,2025-02-01\na,bad,2025-02-01\n",
    )
    result = runner.invoke(app, ["outcomes", "import", str(conflict), "--log-url", url])
    assert result.exit_code == 2
    assert "line 3, outcome: 'a' already has good" in result.output
    assert "--replace" in result.output
    assert set(stored(engine)) == {"a"}
    result = runner.invoke(
        app, ["outcomes", "import", str(conflict), "--log-url", url, "--replace"]
    )
    assert result.exit_code == 0, result.output
    assert "1 recorded, 1 replaced, 0 unchanged" in result.output
    assert {k: v[0] for k, v in stored(engine).items()} == {"a": 2, "b": 1}


def test_labelled_decisions_joins_outcomes_in_the_window(engine: Engine) -> None:
    record_outcomes(engine, [outcome("a", 1), outcome("c", 2)])
    url = str(engine.url)
    frame = labelled_decisions(url)
    assert list(frame.columns) == list(LABELLED_COLUMNS)
    assert list(frame["request_id"]) == ["a", "c"]
    assert list(frame["outcome"]) == [1, 2]
    assert str(frame["outcome"].dtype) == "int64"
    assert frame.loc[0, "decided_at"] == DECIDED
    assert frame.loc[1, "observed_at"] == datetime(2025, 2, 20, tzinfo=UTC)
    assert frame.loc[1, "duration_months"] == 8
    assert frame.loc[0, "checking_account_status"] == APPLICANT["checking_account_status"]
    assert set(FEATURE_NAMES) <= set(frame.columns)
    # since included, until excluded; a naive bound is UTC
    window = labelled_decisions(url, since=DECIDED + timedelta(days=1), until=datetime(2025, 2, 1))
    assert list(window["request_id"]) == ["c"]
    everything = read_decisions_with_outcomes(engine)
    assert list(everything["outcome"].isna()) == [False, True, False]
    light = read_decisions_with_outcomes(engine, attributes=False)
    assert list(light.columns) == [c for c in LABELLED_COLUMNS if c not in FEATURE_NAMES]
    assert light["outcome"].equals(everything["outcome"])


def test_labelled_decisions_of_an_empty_or_missing_log(tmp_path: Path) -> None:
    frame = labelled_decisions(f"sqlite:///{tmp_path / 'none.db'}")
    assert frame.empty
    assert list(frame.columns) == list(LABELLED_COLUMNS)


def test_a_log_of_the_previous_release_is_upgraded_on_open(tmp_path: Path) -> None:
    """tests/data/decision_log_v1.db was written by the decision log before outcomes existed."""
    url = copied_log(V1_LOG, tmp_path)
    old = make_engine(url)
    assert schema_version(old) == 1
    assert not sa.inspect(old).has_table("outcomes")
    assert labelled_decisions(url).empty  # reading alone does not need the upgrade
    old.dispose()

    start_and_stop_service_log(url)
    engine = make_engine(url)
    assert schema_version(engine) == SCHEMA_VERSION == 3
    with engine.connect() as connection:
        versions = list(connection.execute(sa.select(schema_table.c.version)).scalars())
        assert sorted(versions) == [1, 2, 3]
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(decisions_table)).scalar()
            == 3
        )
    assert upgrade_schema(engine) == []  # opening again changes nothing
    engine.dispose()

    csv_file = write_csv(
        tmp_path / "o.csv",
        "request_id,outcome,observed_at\nv1-0,good,2025-03-01\nv1-2,bad,2025-03-01\n",
    )
    import_outcomes(url, csv_file)
    frame = labelled_decisions(url)
    assert list(frame["request_id"]) == ["v1-0", "v1-2"]
    assert list(frame["decision"]) == ["approve", "reject"]


def test_import_upgrades_a_previous_release_log(tmp_path: Path) -> None:
    url = copied_log(V1_LOG, tmp_path)
    csv_file = write_csv(tmp_path / "o.csv", "request_id,outcome,observed_at\nv1-1,2,2025-03-01\n")
    result = import_outcomes(url, csv_file)
    assert result.statuses == [("v1-1", "recorded")]


def test_a_log_from_a_newer_release_is_refused(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.insert(schema_table).values(version=99, description="future", applied_at=DECIDED)
        )
    with pytest.raises(SchemaVersionError, match="schema version 99"):
        upgrade_schema(engine)


# --- the shared PostgreSQL log: several writers, one database ---


@pytest.fixture
def pg_ids() -> Iterator[tuple[Engine, list[str]]]:
    engine = make_engine(POSTGRES_URL)
    upgrade_schema(engine)
    ids = [f"test-outcomes-{uuid.uuid4().hex}" for _ in range(4)]
    log_decisions(engine, ids)
    yield engine, ids
    with engine.begin() as connection:
        connection.execute(sa.delete(outcomes_table).where(outcomes_table.c.request_id.in_(ids)))
        connection.execute(sa.delete(decisions_table).where(decisions_table.c.request_id.in_(ids)))
    engine.dispose()


@pytest.mark.postgres
def test_shared_postgres_log_refuses_a_conflict_from_another_writer(
    pg_ids: tuple[Engine, list[str]],
) -> None:
    engine, ids = pg_ids
    other = make_engine(POSTGRES_URL)  # a second service or importer on the same database
    try:
        record_outcomes(engine, [outcome(ids[0], 2)])
        with pytest.raises(ConflictingOutcomes, match=ids[0]):
            record_outcomes(other, [outcome(ids[1], 1), outcome(ids[0], 1)])
        with pytest.raises(UnknownRequests, match="nobody"):
            record_outcomes(other, [outcome(ids[1], 1), outcome("nobody", 1)])
        frame = read_decisions_with_outcomes(other)
        mine = frame[frame["request_id"].isin(ids)].set_index("request_id")["outcome"]
        assert mine[ids[0]] == 2
        assert mine[[ids[1], ids[2], ids[3]]].isna().all()
    finally:
        other.dispose()


@pytest.mark.postgres
def test_shared_postgres_log_concurrent_writers_record_once(
    pg_ids: tuple[Engine, list[str]],
) -> None:
    _, ids = pg_ids
    engines = [make_engine(POSTGRES_URL) for _ in range(4)]
    results: list[Any] = []
    start = threading.Barrier(len(engines))

    def write(writer: Engine) -> None:
        start.wait()
        results.append(record_outcomes(writer, [outcome(i, 2) for i in ids]))

    threads = [threading.Thread(target=write, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for writer in engines:
        writer.dispose()
    assert len(results) == len(engines)
    recorded = sum(r.count("recorded") for r in results)
    unchanged = sum(r.count("unchanged") for r in results)
    assert (recorded, unchanged) == (len(ids), len(ids) * (len(engines) - 1))


@pytest.mark.postgres
def test_postgres_log_of_the_previous_release_is_upgraded() -> None:
    schema = f"test_outcomes_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    try:
        decisions_table.create(engine)  # what the previous release created
        log_decisions(engine, ["p-1"])
        assert schema_version(engine) == 1
        start_and_stop_service_log(url)
        assert schema_version(engine) == SCHEMA_VERSION
        record_outcomes(engine, [outcome("p-1", 1)])
        assert list(labelled_decisions(url)["request_id"]) == ["p-1"]
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()
