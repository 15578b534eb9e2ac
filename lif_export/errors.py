"""The errors lif_export raises for a user's mistake: a parameter out of range, a file that is not
what it should be, a folder that cannot be written, an argument that does not fit.

Every such error is a :class:`LifExportError` whose message names the argument, the value and what
is allowed. The command line prints exactly that message on one line and exits with status 2; any
other exception is a bug in lif_export and keeps its traceback. The concrete classes also derive
from ``ValueError`` or ``TypeError``, so ``except ValueError`` keeps working for API callers.
"""


class LifExportError(Exception):
    """Base of every user error; the CLI prints its message as one line, exit status 2."""


class InvalidValueError(LifExportError, ValueError):
    """A value, file or folder that is not acceptable (out of range, malformed, in the way)."""


class InvalidTypeError(LifExportError, TypeError):
    """A value of the wrong kind (an integer tensor for a floating one, a module that cannot be exported)."""


__all__ = ["InvalidTypeError", "InvalidValueError", "LifExportError"]
