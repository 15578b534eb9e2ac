"""Committing an export into its folder: one atomic switch, and only lif-export's own files removed.

Layout of an export folder ``OUT``. The public paths (left) are what hosts, the C++ runners and
``lif-export verify`` read; each is a relative symlink through one pointer::

    OUT/manifest.json        -> .lif_export/current/manifest.json
    OUT/lif_step.onnx        -> .lif_export/current/lif_step.onnx     (one link per top-level name of a set)
    OUT/vectors              -> .lif_export/current/vectors
    OUT/.lif_export/current  -> sets/<id>                              the pointer
    OUT/.lif_export/sets/<id>/     one complete set: manifest.json, artifacts, vectors/ (never changed once committed)
    OUT/.lif_export/staging/<id>/  a set being written, flock-ed by its writer for the writer's lifetime
    OUT/.lif_export/trash/<id>/    a set being deleted
    OUT/.lif_export/lock           flock-ed (exclusive) by the one export that is committing

Why a reader of ``manifest.json`` never sees a half-committed export:

1. A set is complete before anything public changes: every file is written, fsync-ed and, with the
   validated ``manifest.json``, sits in its own folder ``staging/<id>``, then ``sets/<id>``.
   Nothing public points there yet.
2. The commit is ONE ``rename(2)``: a new symlink ``current.tmp-<id> -> sets/<id>`` renamed over
   ``current``. Every public path is a fixed symlink through ``current``, so every path lookup
   resolves entirely in the old set or entirely in the new one, and all public paths switch at
   that one instant. ``manifest.json`` and the files it names always come from the same set.
   Links for names only the new set has are made before the switch (until then they resolve to
   nothing, like a file not yet exported); links for names only the old set had are removed
   after it (from the switch on they resolve to nothing).
3. Killed at any point (Ctrl-C, SIGTERM, SIGKILL, power loss after the fsyncs): before the switch
   the old set is current and untouched; after it the new set is. What is left over is a staging
   folder whose writer no longer holds its flock, a set that is not current, dangling links of
   ours, or ``*.tmp`` links: the next export removes them (a staging folder whose writer is alive
   is left alone).
4. Exports build concurrently, each in its own staging folder; commits are serialised by the
   flock on ``.lif_export/lock`` (a second committer waits, saying so, or gives up after
   :data:`LOCK_TIMEOUT` seconds with an error). The last to commit wins, entirely.
5. A reader that opens several files resolves ``current`` once per open, so an export committed
   between two opens gives it files of two sets (each file's sha256 in the manifest shows it). A
   reader that wants one consistent set resolves ``manifest.json`` once (``os.path.realpath``) and
   reads the files beside it: a set folder never changes, and is kept until the export after the
   one that replaced it. ``lif-export verify`` reads that way.

What is removed: only files that an export provably wrote, i.e. named by a manifest that validates
against the schema (paths relative, inside the folder, no ``..``), found inside the folder without
following symlinks, and whose sha256 still matches. Anything else stays where it is, and the export
says so: a file of the user's in ``vectors/`` is carried into the new set (a hard link, so it stays
at the same public path); a changed file stays in its old set folder, which is then kept; a file
that is in the way of a public path makes the export refuse before changing anything.

A folder written by an older lif-export (plain files, no ``.lif_export``) is migrated in the first
commit: its proven files are hard-linked into a set, ``current`` points there, and each plain file
is replaced by its link, which shows the same bytes; the plain ``vectors`` folder is swapped with
its link by ``renameat2(RENAME_EXCHANGE)`` (where the filesystem lacks it, by two renames: a reader
can miss ``vectors/`` for that instant, once per folder).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidValueError
from . import manifest as manifest_mod
from .manifest import MANIFEST_NAME, ManifestError

#: The private folder inside every export folder.
PRIVATE = ".lif_export"
#: Seconds a commit waits for another export's commit before giving up.
LOCK_TIMEOUT = 600.0
#: Prefix of the temporary links made beside a public path before it is replaced.
TMP_LINK = ".lif_export-tmp-"

Report = Callable[[str], None]


class OutputFolderError(InvalidValueError):
    """The export folder cannot be used: empty path, not writable, or something in the way."""


def out_path(out_dir: str | Path) -> Path:
    """``out_dir`` as a path; ``""`` is refused (it would silently mean the current folder: give
    ``"."`` for that)."""
    if not str(out_dir).strip():
        raise OutputFolderError("--out must not be empty (give '.' to write into the current folder)")
    return Path(out_dir)


def check_writable(out_dir: str | Path) -> Path:
    """Create ``out_dir`` if needed and check that files can be made in it."""
    out = out_path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"--out {str(out)!r} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{secrets.token_hex(4)}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        probe.unlink()
    except OSError as err:
        raise OutputFolderError(f"--out directory {str(out)!r} is not writable: {err.strerror}") from None
    return out


def write_set(out_dir: str | Path, build: Callable[[Path], dict], report: Report,
              lock_timeout: float | None = None) -> tuple[dict, list[str]]:
    """Run ``build(folder) -> manifest`` in a fresh staging folder of ``out_dir``, validate the
    manifest, and commit the set. Returns ``(manifest, notes on files kept)``."""
    out = check_writable(out_dir)
    timeout = LOCK_TIMEOUT if lock_timeout is None else lock_timeout
    with Staging(out, report, timeout) as staging:
        manifest = build(staging.path)
        manifest_mod.validate(manifest)
        notes = commit(staging, manifest, report, timeout)
    return manifest, notes


# -- the private folder ---------------------------------------------------------------------------------------


def private_dir(out: Path) -> Path:
    """``out/.lif_export``, created if missing; refused if something else has that name."""
    path = out / PRIVATE
    try:
        path.mkdir(exist_ok=True)
    except FileExistsError:
        pass
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        raise OutputFolderError(f"{path} is in the way: lif-export keeps its sets in a folder of that name; "
                                "move it away or delete it, then export again")
    return path


def _new_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"


class Staging:
    """``.lif_export/staging/<id>``: the folder one export writes its set into. Its writer holds a
    flock on it while alive, so a later export can tell a killed writer's leftovers from a live one.
    It is made under the commit lock, so no commit's clean-up can take it for a leftover."""

    def __init__(self, out: Path, report: Report, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.out = out
        self.path = private_dir(out) / "staging" / _new_id()
        self._fd = -1
        self._lock = (report, lock_timeout)

    def __enter__(self) -> Staging:
        with _committing(self.out, *self._lock):
            self.path.mkdir(parents=True)
            self._fd = os.open(self.path, os.O_RDONLY)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.path.exists():  # not committed (committing renames it into sets/)
                shutil.rmtree(self.path)
        finally:
            os.close(self._fd)


@contextmanager
def _committing(out: Path, report: Report, timeout: float) -> Iterator[None]:
    """Hold the exclusive flock of ``.lif_export/lock``, waiting (and saying so) up to ``timeout`` s."""
    path = private_dir(out) / "lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        raise OutputFolderError(f"cannot open the lock file {path}: {err.strerror}") from None
    try:
        start, said = time.monotonic(), False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                if time.monotonic() - start >= timeout:
                    raise OutputFolderError(
                        f"another lif-export (pid {holder}) is still committing into {out} after {timeout:g} s "
                        f"(it holds {path}); try again when it has finished") from None
                if not said:
                    report(f"note: waiting for another lif-export (pid {holder}) to finish committing into {out}")
                    said = True
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


# -- looking at what is there ----------------------------------------------------------------------------------


def _walk(root: Path, rel: str = "") -> Iterator[str]:
    """Every non-directory under ``root`` (files, symlinks, ...), as paths relative to ``root``; never
    follows a symlink."""
    with os.scandir(root / rel if rel else root) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            path = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(root, path)
            else:
                yield path


def _read_manifest(path: Path) -> dict | None:
    """The manifest at ``path`` if it is a regular file that validates, else ``None``."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        manifest = json.loads(path.read_text())
        manifest_mod.validate(manifest)
        return manifest
    except (OSError, ValueError, ManifestError):
        return None


def _proven(root: Path, rel: str, files: dict[str, str]) -> bool:
    """``root/rel`` is a regular file (not a link) that ``files`` names with its current sha256."""
    want = files.get(rel)
    try:
        return want is not None and stat.S_ISREG(os.lstat(root / rel).st_mode) and \
            manifest_mod.sha256_file(root / rel) == want
    except OSError:
        return False


def _link_target(name: str) -> str:
    return f"{PRIVATE}/current/{name}"


def _is_our_link(path: Path) -> bool:
    return path.is_symlink() and os.readlink(path) == _link_target(path.name)


def current_set(out: Path) -> Path | None:
    """The set ``.lif_export/current`` points to, ``None`` if there is none."""
    pointer = out / PRIVATE / "current"
    if not pointer.is_symlink():
        if os.path.lexists(pointer):
            raise OutputFolderError(f"{pointer} is in the way: it must be the symlink lif-export switches; "
                                    "move it away or delete it, then export again")
        return None
    target = os.readlink(pointer)
    folder = out / PRIVATE / target
    if not target.startswith("sets/") or "/" in target[5:] or not folder.is_dir():
        return None
    return folder


def _describe(path: Path, files: dict[str, str], rel: str) -> str:
    if rel in files:
        return "changed since lif-export wrote it (its sha256 differs from the manifest's)"
    return "not written by lif-export" if not path.is_symlink() else "a symlink lif-export did not make"


# -- the plan: decided before anything is changed ---------------------------------------------------------------


@dataclass
class _Plan:
    names: list[str]  # top-level names of the new set
    missing: list[str] = field(default_factory=list)  # public links to make
    plain: list[str] = field(default_factory=list)  # proven plain files / a plain vectors folder to migrate
    proof: dict[str, str] = field(default_factory=dict)  # what proves plain files: {rel: sha256}
    proof_manifest: Path | None = None  # the plain manifest.json to migrate
    carry: dict[str, Path] = field(default_factory=dict)  # rel -> a file of the user's, into the new set
    notes: list[str] = field(default_factory=list)


def _plan(out: Path, new: Path, old: Path | None) -> _Plan:
    """Decide every change; raise :class:`OutputFolderError` for anything in the way, before any change."""
    plan = _Plan(sorted(os.listdir(new)))
    new_files = set(_walk(new))
    plain_manifest = out / MANIFEST_NAME
    legacy = None if _is_our_link(plain_manifest) else _read_manifest(plain_manifest)
    if legacy is not None:
        plan.proof, plan.proof_manifest = manifest_mod.checked_files(legacy), plain_manifest
    elif old is not None and (old_manifest := _read_manifest(old / MANIFEST_NAME)) is not None:
        plan.proof = manifest_mod.checked_files(old_manifest)
    legacy_names = {rel.split("/")[0] for rel in plan.proof} if legacy is not None else set()
    for name in sorted(set(plan.names) | legacy_names):
        path = out / name
        if not os.path.lexists(path):
            if name in plan.names:
                plan.missing.append(name)
        elif _is_our_link(path):
            continue
        elif name == MANIFEST_NAME and legacy is not None:
            plan.plain.append(name)
        elif not path.is_symlink() and path.is_dir() and name in plan.names:
            plan.plain.append(name)
            for rel in (f"{name}/{r}" for r in _walk(path)):
                if _proven(out, rel, plan.proof):
                    continue
                if rel in new_files:
                    raise OutputFolderError(
                        f"{out / rel} is in the way: it is {_describe(out / rel, plan.proof, rel)}, and the export "
                        "writes a file of that name; move it away or delete it, then export again")
                plan.carry[rel] = out / rel
                plan.notes.append(f"kept {rel}: {_describe(out / rel, plan.proof, rel)}")
        elif _proven(out, name, plan.proof):
            plan.plain.append(name)
        elif name in plan.names:
            why = ("not a manifest lif-export wrote (it does not validate against the schema)"
                   if name == MANIFEST_NAME and not path.is_symlink() else _describe(path, plan.proof, name))
            raise OutputFolderError(f"{path} is in the way: it is {why}; lif-export replaces only its own files: "
                                    "move it away or delete it, then export again")
        else:
            plan.notes.append(f"kept {name}: {_describe(path, plan.proof, name)}")
    if old is not None:
        _plan_old_set(plan, old, new_files)
    return plan


def _plan_old_set(plan: _Plan, old: Path, new_files: set[str]) -> None:
    """Files in the current set that its manifest does not vouch for: the user's, or changed ones."""
    manifest = _read_manifest(old / MANIFEST_NAME)
    files = manifest_mod.checked_files(manifest) if manifest is not None else {}
    for rel in _walk(old):
        if rel == MANIFEST_NAME or _proven(old, rel, files):
            continue
        where = f"{old.relative_to(old.parents[2])}/{rel}"
        if rel in plan.carry and _twin(old / rel, plan.carry[rel]):
            continue  # the same file, already carried from the plain folder
        if rel.startswith("vectors/") and rel not in new_files and rel not in plan.carry:
            plan.carry[rel] = old / rel
            plan.notes.append(f"kept {rel}: {_describe(old / rel, files, rel)}")
        else:
            plan.notes.append(f"kept {where}: {_describe(old / rel, files, rel)}; the new export does not show it")


# -- changing things ------------------------------------------------------------------------------------------


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for rel in _walk(root):
        _fsync(root / rel)
    for folder, _, _ in os.walk(root):
        _fsync(Path(folder))


def _hard_link(source: Path, target: Path) -> None:
    """``target`` becomes another name of ``source`` (a copy where the filesystem has no hard links)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        shutil.copy2(source, target, follow_symlinks=False)


def _symlink_over(out: Path, name: str, target: str) -> None:
    """Make ``out/name`` a symlink to ``target`` in one rename (for a plain file)."""
    tmp = out / f"{TMP_LINK}{name}"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, out / name)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); ``False`` where unsupported."""
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if function(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a))


def _point(out: Path, target: str) -> None:
    """THE switch: ``.lif_export/current -> target`` in one rename."""
    private = out / PRIVATE
    tmp = private / f"current.tmp-{secrets.token_hex(4)}"
    os.symlink(target, tmp)
    os.replace(tmp, private / "current")
    _fsync(private)


def _migrate(out: Path, plan: _Plan, old: Path | None) -> Path | None:
    """Turn the proven plain files of an older layout into links, each showing the same bytes throughout;
    returns the set now current (``old``, or a new one holding the plain files)."""
    if not plan.plain:
        return old
    target = old
    if plan.proof_manifest is not None and (old is None or not (old / MANIFEST_NAME).is_file() or
                                            manifest_mod.sha256_file(old / MANIFEST_NAME)
                                            != manifest_mod.sha256_file(plan.proof_manifest)):
        target = out / PRIVATE / "sets" / f"{_new_id()}-migrated"
        target.mkdir(parents=True)
    assert target is not None
    for name in sorted(plan.plain, key=lambda n: n != MANIFEST_NAME):  # the manifest first: it proves the rest
        path = out / name
        rels = [name] if not path.is_dir() else [f"{name}/{r}" for r in _walk(path)]
        for rel in rels:
            if not os.path.lexists(target / rel):
                _hard_link(out / rel, target / rel)
    if target is not old:
        _fsync_tree(target)
        _point(out, f"sets/{target.name}")
    for name in plan.plain:
        path = out / name
        if not path.is_dir():
            _symlink_over(out, name, _link_target(name))
            continue
        retired = out / f"{TMP_LINK}{name}"
        if os.path.lexists(retired):
            os.unlink(retired)
        os.symlink(_link_target(name), retired)
        if not _exchange(retired, path):
            os.unlink(retired)
            os.rename(path, retired)
            os.symlink(_link_target(name), path)
        _remove_retired(retired, target)
    return target


def _twin(path: Path, other: Path) -> bool:
    """``other`` is another name of the same file (a hard link of it)."""
    return os.path.lexists(other) and os.path.samestat(os.lstat(other), os.lstat(path))


def _remove_ours(folder: Path, is_ours: Callable[[str], bool]) -> list[str]:
    """Remove the files of ``folder`` for which ``is_ours(relative path)`` (a manifest among them
    last: it proves the others), then the folder if it is empty; when all are ours the folder
    goes in one rename into ``.lif_export/trash`` first. Returns the files that stayed."""
    rels = list(_walk(folder))
    foreign = [rel for rel in rels if not is_ours(rel)]
    if not foreign:
        private = folder.parents[1] if folder.parent.name == "sets" else folder.parent / PRIVATE
        target = private / "trash" / f"{folder.name}-{secrets.token_hex(3)}"
        target.parent.mkdir(exist_ok=True)
        os.rename(folder, target)
        shutil.rmtree(target)
        return []
    for rel in sorted(set(rels) - set(foreign), key=lambda r: r == MANIFEST_NAME):
        os.unlink(folder / rel)
    _remove_empty_dirs(folder)
    return foreign


def _remove_retired(folder: Path, current: Path) -> list[str]:
    """Remove a retired plain folder ``out/.lif_export-tmp-<name>`` whose files the current set has
    too (hard links of them); anything else stays, and is returned."""
    name = folder.name.removeprefix(TMP_LINK)
    kept = _remove_ours(folder, lambda rel: _twin(folder / rel, current / name / rel))
    return [f"{folder.name}/{rel}" for rel in kept]


def _remove_empty_dirs(root: Path) -> None:
    for folder, _, _ in sorted(os.walk(root), key=lambda w: -len(w[0])):
        try:
            os.rmdir(folder)
        except OSError:
            pass  # not empty: something kept


def _discard_set(folder: Path, keep: list[Path]) -> list[str]:
    """Delete a set that is neither current nor the previous one. Files its manifest vouches for
    (sha256 matching) go, and so do hard links of files the sets in ``keep`` hold at the same path
    (the user's files that were carried over, a migration's links); anything else stays, and is
    returned as notes."""
    manifest = _read_manifest(folder / MANIFEST_NAME)
    files = manifest_mod.checked_files(manifest) if manifest is not None else {}

    def ours(rel: str) -> bool:
        return (rel == MANIFEST_NAME and manifest is not None) or _proven(folder, rel, files) or \
            any(_twin(folder / rel, other / rel) for other in keep)

    base = folder.parents[2]
    return [f"kept {(folder / rel).relative_to(base)}: {_describe(folder / rel, files, rel)}"
            for rel in _remove_ours(folder, ours)]


def _recover(out: Path, current: Path | None) -> list[str]:
    """Remove what killed exports left: staging folders whose writer is gone, trash, stray temporary
    links, retired plain folders (all recognisable by name in our folders)."""
    private = out / PRIVATE
    notes = []
    staging_root = private / "staging"
    for folder in sorted(staging_root.iterdir()) if staging_root.is_dir() else []:
        if folder.is_symlink() or not folder.is_dir():
            notes.append(f"kept {folder.relative_to(out)}: not written by lif-export")
            continue
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # only a dead writer's folder can be locked
        except BlockingIOError:
            continue
        else:
            shutil.rmtree(folder)
        finally:
            os.close(fd)
    shutil.rmtree(private / "trash", ignore_errors=True)
    for entry in sorted(private.glob("current.tmp-*")):
        if entry.is_symlink():
            os.unlink(entry)
    for entry in sorted(out.glob(f"{TMP_LINK}*")):
        if entry.is_symlink():
            os.unlink(entry)
        elif entry.is_dir() and current is not None:
            notes += [f"kept {rel}: not written by lif-export" for rel in _remove_retired(entry, current)]
    for entry in sorted(out.glob(".write-test-*")):  # check_writable's probe, left by a kill
        if entry.is_file() and not entry.is_symlink() and entry.stat().st_size == 0:
            os.unlink(entry)
    for entry in sorted([*out.glob(".staging-*"), *out.glob(".vectors-old-*")]):
        notes.append(f"kept {entry.name}: left by an older lif-export that was killed; no manifest proves "
                     "what it holds, so delete it yourself")
    return notes


def commit(staging: Staging, manifest: dict, report: Report, lock_timeout: float = LOCK_TIMEOUT) -> list[str]:
    """Make the staged set the folder's current set in one atomic switch (see the module docstring);
    returns notes on files kept (each also reported as ``note: ...``)."""
    out, new = staging.out, staging.path
    (new / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    _fsync_tree(new)
    with _committing(out, report, lock_timeout):
        old = current_set(out)
        notes = _recover(out, old)
        plan = _plan(out, new, old)
        notes += plan.notes
        for rel, source in plan.carry.items():
            _hard_link(source, new / rel)
        old = _migrate(out, plan, old)
        for name in plan.missing:
            os.symlink(_link_target(name), out / name)
        _fsync(out)
        sets = out / PRIVATE / "sets"
        sets.mkdir(exist_ok=True)
        os.rename(new, sets / new.name)
        _fsync(sets)
        _point(out, f"sets/{new.name}")
        try:
            notes += _tidy(out, sets / new.name, old)
        except OSError as err:  # committed already: a failed clean-up is for the next export to finish
            notes.append(f"left some of the previous sets in {out / PRIVATE} ({err.strerror}: {err.filename})")
    for note in notes:
        report(f"note: {note}")
    return notes


def _tidy(out: Path, current: Path, previous: Path | None) -> list[str]:
    """After the switch: remove our links to names the current set lacks, and every set but the
    current and the previous one (whose carried files, hard links of the current set's, go with it)."""
    notes = []
    names = set(os.listdir(current))
    for entry in sorted(out.iterdir()):
        if entry.name not in names and _is_our_link(entry):
            os.unlink(entry)
    for folder in sorted((out / PRIVATE / "sets").iterdir()):
        if folder in (current, previous):
            continue
        if folder.is_dir() and not folder.is_symlink():
            notes += _discard_set(folder, [s for s in (current, previous) if s is not None])
        else:
            notes.append(f"kept {folder.relative_to(out)}: not written by lif-export")
    return notes
