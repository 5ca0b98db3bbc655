"""Writing a user's files safely: never over the input, never half-written under their name.

:func:`refuse_same_file` refuses an output that is the input (by device and inode, so through
symlinks and hard links too) before anything is opened for writing. :func:`atomic_output`
writes to a temporary file in the target's folder (same filesystem) and renames it over the
target only when the writer finished: a failed run leaves an existing file as it was. The
rename is atomic against a failing or killed process; the data is not flushed to disk first
(outputs can be large, and a run that was cut short by a power loss is simply run again).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from credit_risk.errors import UserError


def refuse_same_file(input_path: Path, output_path: Path) -> None:
    """Refuse to write ``output_path`` when it is the file ``input_path`` (or a link to it).

    Raises:
        UserError: the output is the input, or the output is a directory.
    """
    output_path = Path(output_path)
    if output_path.is_dir():
        raise UserError(f"--output {output_path} is a directory; give the path of a file to write")
    try:
        source, target = os.stat(input_path), os.stat(output_path)
    except OSError:  # the output does not exist yet (or the input does not: reported later)
        return
    if (source.st_dev, source.st_ino) == (target.st_dev, target.st_ino):
        same_name = os.path.abspath(input_path) == os.path.abspath(output_path)
        how = "" if same_name else " (through a link)"
        raise UserError(
            f"--output {output_path} is the input file {input_path}{how}; writing it would "
            "destroy the input: choose another output path"
        )


def _temporary_beside(target: Path) -> tuple[Path, int]:
    """A new, empty file in ``target``'s folder (mode 0666 less the umask, as ``open`` makes)."""
    for _ in range(100):
        candidate = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return candidate, os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` in one rename.

    A symlink at ``path`` is followed (its target is replaced, as writing through it would);
    an existing file keeps its permissions. On any exception the temporary file is removed and
    ``path`` is left untouched.

    Args:
        path: the file the caller means to write.

    Yields:
        Where to write instead (in the same folder, so the rename never copies).
    """
    target = Path(path)
    if target.is_symlink():
        target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary, descriptor = _temporary_beside(target)
    try:
        try:
            with contextlib.suppress(FileNotFoundError):
                os.fchmod(descriptor, stat.S_IMODE(os.stat(target).st_mode))
        finally:
            os.close(descriptor)
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` through :func:`atomic_output`."""
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding=encoding)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (``sqlite:///rel.db``, ``sqlite:////abs.db``).

    Returns:
        The file's path, or None when the URL is not SQLite or names no file (in memory, or a
        ``file:`` URI left to SQLite).
    """
    if not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)
