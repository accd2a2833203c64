"""One way for stage scripts and command-line tools to report a user's mistake: ``error: <path>: <problem>``.

The project's own errors (a bad params file, a broken data set, an unreadable image or checkpoint, missing
predictions...) and file-system refusals name what is wrong in their message, so a traceback only hides it. Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from pipeline.errors import PipelineError

__all__ = ["USER_ERROR_EXIT", "describe", "is_user_error", "reports_user_errors"]

USER_ERROR_EXIT = 1

# The project's own errors, and a folder that cannot be written or read or a missing input: the user's environment,
# not the code. One base class, so the answer never depends on which modules happen to be imported.
_USER_ERRORS = (
    PipelineError,
    PermissionError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
)

P = ParamSpec("P")
R = TypeVar("R")


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of the project's own errors (a :class:`~pipeline.errors.PipelineError`) or a file-system
    refusal (not a bug)."""
    return isinstance(exc, _USER_ERRORS)


def describe(exc: BaseException) -> str:
    """``<path>: <problem>``: the project's errors already read so; an OSError is restated from its filename."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror[0].lower()}{exc.strerror[1:]}"
    return str(exc)


def reports_user_errors(main: Callable[P, R]) -> Callable[P, R]:
    """Decorate a CLI ``main``: a user error prints ``error: <path>: <problem>`` on stderr and exits with status
    ``USER_ERROR_EXIT`` (via SystemExit); any other exception propagates with its traceback."""

    @functools.wraps(main)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return main(*args, **kwargs)
        except Exception as exc:
            if not is_user_error(exc):
                raise
            print(f"error: {describe(exc)}", file=sys.stderr)
            raise SystemExit(USER_ERROR_EXIT) from None

    return wrapper
