"""The project's own errors that a user can fix: entry points print them as one line and exit 1.

Every error raised for bad input, a missing file or weights, or an unusable setting subclasses
:class:`UserError`. Anything else (a ``ValueError`` or ``KeyError`` from a bug, a library error)
is not one of these and keeps its full traceback, on the console and in the run log.
Classes that other code already catches as ``ValueError`` / ``FileNotFoundError`` keep that
as a second base.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user fixes (input, data source, weights, a setting); its message is one line."""


class ConfigError(UserError, ValueError):
    """A setting (a config key or a command-line override) cannot be used."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder named by a setting does not exist."""


class OutputExistsError(UserError, FileExistsError):
    """An output location is taken (it exists and is not empty)."""


class OutputPermissionError(UserError, PermissionError):
    """An output location cannot be created or written."""


def find_user_error(error: BaseException | None) -> UserError | None:
    """The first :class:`UserError` along the ``__cause__`` chain (``raise ... from``), else ``None``.

    Hydra wraps errors raised while instantiating a target (``InstantiationException``), so the
    user's error is usually a cause, not the raised exception itself. The implicit context is not
    followed: an error raised while handling a ``UserError`` is a bug, not the user's problem.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserError):
            return error
        seen.add(id(error))
        error = error.__cause__
    return None


def one_line(error: BaseException) -> str:
    """The first line of the error's message (its class name when it has none)."""
    text = str(error)
    return text.splitlines()[0] if text.strip() else type(error).__name__
