"""Errors that end a run before it starts, with a message for the user rather than a traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class SetupError(Exception):
    """A run cannot start as configured: the message names the file or the field and says what to do."""


@contextlib.contextmanager
def setup_step(what: str) -> Iterator[None]:
    """Turn a bad input met while ``what`` (e.g. "domain", "model") is being built into a ``SetupError``.

    Bad inputs are ``ValueError`` (the loaders' and configs' own errors subclass it), ``OSError`` (a missing or
    unreadable file) and ``KeyError`` (an unknown name); anything else is a bug and keeps its traceback.
    """
    try:
        yield
    except SetupError:
        raise
    except (ValueError, OSError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise SetupError(f"{what}: {message}") from error
