"""File I/O for user-given paths: atomic writes (a reader never sees a half-written file), early
checks of output paths, and loading ``torch.save`` files with one-line errors."""

import os
import pickle
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

from .errors import InvalidValueError


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    On any error (or Ctrl-C) the temporary file is removed and ``path`` is
    left as it was.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def check_output_file(path: Path, flag: str) -> Path:
    """Raise, before any work, if a file cannot be written at ``path`` (given by ``flag``): a folder,
    a missing or unwritable parent folder."""
    path = Path(path)
    if path.is_dir():
        raise InvalidValueError(f"{flag} {str(path)!r} is a folder; give the path of a file")
    parent = path.parent
    if not parent.is_dir():
        raise InvalidValueError(f"{flag} {str(path)!r}: the folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidValueError(f"{flag} {str(path)!r}: the folder {str(parent)!r} is not writable")
    return path


def load_torch_file(path: Path, flag: str, weights_only: bool = True) -> object:
    """``torch.load`` a file a user gave with ``flag``; a missing, empty or malformed file is an
    :class:`~lif_export.errors.InvalidValueError` saying so in one line. ``weights_only=False``
    unpickles arbitrary objects: only for files the user trusts."""
    import torch

    path = Path(path)
    if path.is_dir():
        raise InvalidValueError(f"{flag} {str(path)!r} is a folder, not a file")
    if not path.is_file():
        raise InvalidValueError(f"{flag} {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise InvalidValueError(f"{flag} {str(path)!r} is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:  # unpickling a user's file can raise anything
        if weights_only and isinstance(err, pickle.UnpicklingError):
            reason = "not a torch.save file of tensors: save model.state_dict(), not the model or other objects"
        else:
            reason = f"not a file torch.save wrote: {type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
        raise InvalidValueError(f"{flag} {str(path)!r} is {reason}") from None
