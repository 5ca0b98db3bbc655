"""A user's files: an output never overwrites the input, and is never left half-written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from credit_risk.errors import UserError
from credit_risk.files import atomic_output, refuse_same_file, sqlite_file, write_text_atomic


def test_output_that_is_the_input_is_refused_by_name_symlink_and_hard_link(
    tmp_path: Path,
) -> None:
    source = tmp_path / "applicants.data"
    source.write_text("keep me\n")
    symlink, hard_link = tmp_path / "symlink.data", tmp_path / "hard.data"
    symlink.symlink_to(source)
    os.link(source, hard_link)
    for output in (source, tmp_path / "." / "applicants.data", symlink, hard_link):
        with pytest.raises(UserError, match="is the input file"):
            refuse_same_file(source, output)
    refuse_same_file(source, tmp_path / "scores.csv")  # a new file is fine
    (tmp_path / "other.csv").write_text("x")
    refuse_same_file(source, tmp_path / "other.csv")  # another existing file too
    with pytest.raises(UserError, match="is a directory"):
        refuse_same_file(source, tmp_path)
    assert source.read_text() == "keep me\n"


def test_failed_write_leaves_the_existing_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "scores.csv"
    target.write_text("previous results\n")
    with pytest.raises(RuntimeError), atomic_output(target) as temporary:
        temporary.write_text("half of the new")
        raise RuntimeError("the run failed")
    assert target.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]


def test_completed_write_replaces_keeping_the_mode_and_following_a_symlink(
    tmp_path: Path,
) -> None:
    real = tmp_path / "real.csv"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    write_text_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert real.stat().st_mode & 0o777 == 0o640
    fresh = tmp_path / "sub" / "fresh.csv"
    write_text_atomic(fresh, "made")
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.read_text() == "made" and fresh.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///decisions.db", Path("decisions.db")),
        ("sqlite:////var/log/decisions.db", Path("/var/log/decisions.db")),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("postgresql://user@host/db", None),
    ],
)
def test_sqlite_file_of_a_url(url: str, expected: Path | None) -> None:
    assert sqlite_file(url) == expected
