"""The TorchScript format: the model's own modules, scripted, with the manifest entry embedded.

TorchScript needs no per-layer emitter: every layer's PyTorch step compiles with
``torch.jit.script`` as it is, so the registry of this format is the model's list of scripted
artifacts (:meth:`~lif_export.export.model.ExportModel.scripted`). A single neuron is called
``flat``: ``(x, v) -> (spike, v_next)``; a network ``state_list``: ``(x, [states]) -> (out,
[states] [, [traces]])``.

The archives are byte-reproducible: ``torch.jit.save`` writes a random ``.data/serialization_id``
and lists a module's ``Final`` constants in the order of a Python ``set`` (which changes with the
hash seed of each process), so each archive is rewritten (:func:`make_reproducible`) with those
constants sorted, an id derived from the content, entries sorted and stored uncompressed with
fixed timestamps, data aligned to 64 bytes as ``torch.jit.save`` aligns it.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

from ...errors import InvalidValueError
from ..manifest import EMBEDDED_KEY, ArtifactEntry
from ..model import ExportModel, Scripted
from .base import Artifact, ExportOptions, embedded_manifest, model_io

#: One ``Final`` constant of a scripted class, as TorchScript prints it in the archive's code.
_CONSTANT = re.compile(rb"^  \w+ : Final\[.*$")
#: Alignment of every entry's data in the archive (``torch.jit.save``'s).
_ALIGN = 64


def _writer(scripted: Scripted, entry: ArtifactEntry) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        module = scripted.build()
        if not isinstance(module, torch.jit.ScriptModule):
            module = torch.jit.script(module.eval())
        path = folder / entry["file"]
        torch.jit.save(module, str(path), _extra_files={EMBEDDED_KEY: embedded_manifest(entry)})
        make_reproducible(path)

    return write


def artifacts(model: ExportModel, options: ExportOptions) -> list[Artifact]:
    planned = []
    for scripted in model.scripted():
        entry: ArtifactEntry = {
            "name": scripted.name, "file": f"{scripted.stem}.pt", "format": "torchscript", "kind": scripted.kind,
            "method": scripted.method, "calling_convention": scripted.convention,
            **model_io(model, scripted.kind == "sequence"), **scripted.extra}
        planned.append(Artifact(entry, _writer(scripted, entry)))
    return planned


def _sorted_constants(code: bytes) -> bytes:
    """Each run of consecutive ``Final`` constant lines sorted (the run keeps its length, so the
    offsets that the ``.debug_pkl`` beside it records stay valid)."""
    lines = code.split(b"\n")
    out: list[bytes] = []
    run: list[bytes] = []
    for line in [*lines, None]:
        if line is not None and _CONSTANT.match(line):
            run.append(line)
            continue
        out += sorted(run)
        run = []
        if line is not None:
            out.append(line)
    return b"\n".join(out)


def make_reproducible(path: Path) -> None:
    """Rewrite a ``torch.jit.save`` archive so the same module always gives the same bytes."""
    with zipfile.ZipFile(path) as archive:
        records = {info.filename: archive.read(info) for info in archive.infolist()}
    for name, data in records.items():
        if "/code/" in name and name.endswith(".py"):
            records[name] = _sorted_constants(data)
    ids = [name for name in records if name.endswith("/.data/serialization_id")]
    digest = hashlib.sha256()
    for name in sorted(set(records) - set(ids)):
        digest.update(name.encode() + b"\0" + records[name])
    for name in ids:
        records[name] = str(int(digest.hexdigest()[:32], 16)).zfill(40).encode()
    with open(path, "wb") as file, zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(records):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            header = 30 + len(name.encode()) + 4  # local header, name, and the padding field's own header
            pad = -(file.tell() + header) % _ALIGN
            info.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # "FB", as torch.jit.save pads
            info.create_system = 0
            archive.writestr(info, records[name])


def embedded_entry(path: Path) -> dict:
    """The manifest entry embedded in an artifact, read from the archive without loading it."""
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith(f"/extra/{EMBEDDED_KEY}")]
        if len(names) != 1:
            raise InvalidValueError(f"no extra/{EMBEDDED_KEY} in the archive")
        return json.loads(archive.read(names[0]))


def load(path: Path) -> tuple[torch.jit.ScriptModule, dict]:
    """Load an artifact and its embedded manifest entry."""
    extra = {EMBEDDED_KEY: ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return module, json.loads(extra[EMBEDDED_KEY] or "{}")
