"""Errors a user can fix: the CLI prints their message in one line and exits with code 2.

Raise a :class:`UserError` (or a subclass) only when the message already says what is wrong
and where (the file, line, column or setting) and what would be accepted; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, files or settings, explained in its message."""
