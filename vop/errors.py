"""User errors: mistakes a user can fix (a missing file, a bad option, a mismatched checkpoint).

The entry points print them as one block (what, where, how to fix) and exit with status 2;
anything else is a bug and keeps its traceback. `HYDRA_FULL_ERROR=1` shows the traceback of a
user error too.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import Callable, TypeVar

EXIT_USER_ERROR = 2
F = TypeVar("F", bound=Callable)


class UserError(Exception):
    """Base of every error whose message alone tells the user what to do."""


class ConfigError(UserError, ValueError):
    """A config value out of range, of the wrong type, or not among the allowed choices."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder named in the config or on the command line does not exist."""


class InputError(UserError, ValueError):
    """A query, caption or file given on the command line cannot be used as it is."""


def report(err: BaseException) -> str:
    """The block printed for a user error: its message, then how to see the traceback."""
    return f"Error: {err}\n(a traceback: HYDRA_FULL_ERROR=1)"


def user_error(err: BaseException) -> UserError | None:
    """`err`, or the UserError it wraps (Hydra's instantiate wraps what a `_target_` raises)."""
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, UserError):
            return err
        err, seen = err.__cause__, seen + 1
    return None


def exit_on_user_error(fn: F) -> F:
    """Wrap an entry point: a UserError becomes its message on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            user = user_error(err)
            if user is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(report(user), file=sys.stderr, flush=True)
            sys.exit(EXIT_USER_ERROR)

    return wrapper  # type: ignore[return-value]


class ArgumentParser(argparse.ArgumentParser):
    """argparse for the scripts that take flags: a bad flag is one `Error:` block and exit status 2,
    like every other user error (argparse's own is its usage line, then `prog: error: ...`)."""

    def error(self, message: str):
        print(f"Error: {message}\n({self.format_usage().strip()})", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)
