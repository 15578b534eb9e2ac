"""The standing attack suite: hostile arguments, files and folders, tampered artifacts and golden
vectors, concurrent exports, and commits killed (SIGKILL) at every step.

Every case asserts the exit code, a one-line message naming the problem, and that a good export
folder (the one attacked, or the session's) still verifies afterwards.
"""

import fcntl
import json
import os
import shutil
import signal
import threading
import time
import traceback
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from lif_export import LIFCell
from lif_export.cli import main as cli
from lif_export.conformance.verify import check_checksums, verify_dir
from lif_export.errors import LifExportError
from lif_export.export import NeuronSpec, export, spec_from_state_dict
from lif_export.export import commit as commit_mod
from lif_export.export.manifest import EMBEDDED_KEY, ManifestError, load_manifest, pinned_folder, sha256_file
from lif_export.network import ExactLinear, LIFLayer, SpikingSequential


def verifies(folder: Path) -> bool:
    """Every file checked against the manifest, and one golden case run: quick, and enough to show
    that the folder holds one complete, consistent set."""
    report = verify_dir(folder, families=["numpy"], cases=["golden:constant_low"], progress=False)
    return report.ok


def public_view(folder: Path) -> dict[str, bytes]:
    """What a reader of the public paths sees (links followed, the private folder aside)."""
    view = {}
    for path in sorted(folder.iterdir()):
        if path.name == commit_mod.PRIVATE:
            continue
        if path.is_dir():
            view.update({str(p.relative_to(folder)): p.read_bytes() for p in path.rglob("*") if p.is_file()})
        elif path.exists():
            view[path.name] = path.read_bytes()
    return view


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small export (ONNX only, over an earlier one) to attack copies of, and a set of another
    neuron to commit."""
    base = tmp_path_factory.mktemp("hostile")
    export(NeuronSpec(beta=0.9), base / "good", formats=["onnx"])
    export(NeuronSpec(beta=0.8), base / "good", formats=["onnx"])
    export(NeuronSpec(beta=0.5), base / "other", formats=["onnx"])
    return base / "good", (base / "other" / "manifest.json").resolve().parent


@pytest.fixture
def good(small, tmp_path):
    """A fresh copy of the good export folder."""
    folder = tmp_path / "E"
    shutil.copytree(small[0], folder, symlinks=True)
    return folder


def plain_copy(source: Path, target: Path) -> Path:
    """The folder as an older lif-export left it: plain files, no private folder."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(commit_mod.PRIVATE))
    return target


# -- export: hostile arguments and parameter files ------------------------------------------------------------


def _state(tmp_path: Path, value: object) -> Path:
    path = tmp_path / "sd.pt"
    torch.save(value, path)
    return path


def _params(beta=0.9, threshold=1.0, v_reset=0.0) -> dict:
    return {name: value if isinstance(value, torch.Tensor) else torch.tensor(value)
            for name, value in (("beta", beta), ("threshold", threshold), ("v_reset", v_reset))}


def _raw(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "file.pt"
    path.write_bytes(data)
    return path


EXPORT_ATTACKS = {
    "empty --out": (lambda t: ["--out", ""], "--out must not be empty"),
    "beta 2 in a state_dict": (lambda t: ["--state-dict", _state(t, _params(beta=2.0))],
                               "beta must satisfy 0 <= beta <= 1, got 2.0 in the state_dict"),
    "threshold -1 in a state_dict": (lambda t: ["--state-dict", _state(t, _params(threshold=-1.0))],
                                     "threshold must be finite and > 0, got -1.0 in the state_dict"),
    "the flag to clamp is named": (lambda t: ["--state-dict", _state(t, _params(beta=2.0))], "--clamp-learned"),
    "integer beta 9": (lambda t: ["--state-dict", _state(t, _params(beta=torch.tensor(9)))],
                       "beta in the state_dict must be a floating-point tensor, got torch.int64"),
    "complex beta": (lambda t: ["--state-dict", _state(t, _params(beta=torch.tensor(0.5 + 1j)))],
                     "must be a floating-point tensor, got torch.complex64"),
    "empty beta": (lambda t: ["--state-dict", _state(t, _params(beta=torch.tensor([])))],
                   "per-neuron beta has no values (shape (0,)): give at least one value per neuron"),
    "a pickled module": (lambda t: ["--state-dict", _state(t, LIFCell())], "is not a torch.save file of tensors"),
    "garbage": (lambda t: ["--state-dict", _raw(t, b"\x00garbage" * 9)], "is not a torch.save file of tensors"),
    "an empty file": (lambda t: ["--state-dict", _raw(t, b"")], "is empty"),
    "a list": (lambda t: ["--state-dict", _state(t, [1, 2])], "must hold a state_dict (a dict of tensors), got list"),
    "a string": (lambda t: ["--state-dict", _state(t, "beta")], "must hold a state_dict (a dict of tensors), got str"),
    "a folder as --state-dict": (lambda t: ["--state-dict", t], "is a folder, not a file"),
    "a missing --state-dict": (lambda t: ["--state-dict", t / "missing.pt"], "does not exist"),
    "--beta beside --state-dict": (lambda t: ["--state-dict", _state(t, _params()), "--beta", "0.5"],
                                   "--beta cannot be combined with --state-dict"),
    "--features beside --state-dict": (lambda t: ["--state-dict", _state(t, _params()), "--features", "4"],
                                       "--features cannot be combined with --state-dict"),
    "--prefix alone": (lambda t: ["--prefix", "lif."], "--prefix needs --state-dict"),
    "garbage --network": (lambda t: ["--network", _raw(t, b"\x00garbage" * 9), "--features", "4"],
                          "is not a file torch.save wrote: UnpicklingError"),
    "a list as --network": (lambda t: ["--network", _state(t, [1]), "--features", "4"],
                            "--network must hold a SpikingSequential, got list"),
    "--beta beside --network": (lambda t: ["--network", _state(t, [1]), "--features", "4", "--beta", "0.5"],
                                "--beta cannot be combined with --network"),
    "--state-dict beside --network": (lambda t: ["--network", _state(t, [1]), "--state-dict", t / "x"],
                                      "--state-dict cannot be combined with --network"),
    "--network without --features": (lambda t: ["--network", _state(t, [1])], "--network needs --features"),
    "--opset 0": (lambda t: ["--opset", "0"], "opset must be an integer from 17 to"),
    "--features 100000000": (lambda t: ["--features", "100000000"], "the golden vectors of this model would take"),
}


@pytest.mark.parametrize("attack", EXPORT_ATTACKS, ids=list(EXPORT_ATTACKS))
def test_export_refuses_with_one_line(attack, good, tmp_path, capsys, monkeypatch):
    make_args, message = EXPORT_ATTACKS[attack]
    args = [str(a) for a in make_args(tmp_path)]
    before = public_view(good)
    monkeypatch.chdir(tmp_path)
    code = cli(["export", *(args if "--out" in args else ["--out", str(good), *args])])
    assert code == 2
    assert message in one_line(capsys.readouterr().err)
    assert public_view(good) == before and verifies(good)


def test_clamp_learned_exports_what_forward_uses(tmp_path, capsys):
    path = _state(tmp_path, _params(beta=torch.tensor([0.5, 1.3]), threshold=torch.tensor([-1.0, 0.5])))
    assert cli(["export", "--state-dict", str(path), "--clamp-learned", "--out", str(tmp_path / "m"), "-q",
                "--format", "onnx"]) == 0
    neuron = json.loads((tmp_path / "m" / "manifest.json").read_text())["neuron"]
    assert neuron["beta"] == [0.5, 1.0] and neuron["threshold"] == [float(np.float32(1e-6)), 0.5]
    assert verifies(tmp_path / "m")


def test_api_refuses_the_same_values(exported, tmp_path):
    with pytest.raises(TypeError, match=r"dtype must be a real floating-point torch dtype .*got torch.int32"):
        LIFCell(dtype=torch.int32)
    with pytest.raises(ValueError, match=r"load_state_dict: beta must satisfy 0 <= beta <= 1, got 2.0"):
        LIFCell().load_state_dict(_params(beta=2.0))
    with pytest.raises(LifExportError, match=r"beta must satisfy .* got 2.0 in the state_dict.*clamp_learned=True"):
        spec_from_state_dict(_params(beta=2.0))
    cell = LIFCell()
    with torch.no_grad():
        cell.beta.fill_(5.0)  # past the constructor's check: export refuses it the same way
    with pytest.raises(LifExportError, match=r"beta must satisfy 0 <= beta <= 1, got 5.0"):
        export(cell, tmp_path)
    with pytest.raises(LifExportError, match="--out must not be empty"):
        export(NeuronSpec(), "")
    for module in (LIFCell(), torch.jit.script(LIFCell())):  # the same words eager and scripted
        with pytest.raises(Exception, match=r"must have the dtype of x \(float32\), got float64"):
            module(torch.ones(2), torch.ones(2, dtype=torch.float64))
    assert not list(tmp_path.iterdir()) and verifies(exported)


# -- export: hostile folders -----------------------------------------------------------------------------------


def _issue_example(folder: Path) -> tuple[list[Path], str]:
    victims = folder.parent / "victims"
    victims.mkdir()
    (victims / "a.txt").write_text("victim")
    folder.mkdir()
    (folder / "notes.txt").write_text("notes")
    (folder / "manifest.json").write_text('{"artifacts":[{"file":"../victims/a.txt"},{"file":"notes.txt"}]}')
    return [victims / "a.txt", folder / "notes.txt", folder / "manifest.json"], \
        "manifest.json is in the way: it is not a manifest lif-export wrote"


def _manifest_links_outside(folder: Path) -> tuple[list[Path], str]:
    victim = folder.parent / "victim.json"
    victim.write_text("{}")
    folder.mkdir()
    (folder / "manifest.json").symlink_to(victim)
    return [victim], "manifest.json is in the way: it is a symlink lif-export did not make"


def _vectors_link_outside(folder: Path) -> tuple[list[Path], str]:
    victims = folder.parent / "victims"
    victims.mkdir()
    (victims / "x.npy").write_text("victim")
    (folder / "vectors").unlink()
    (folder / "vectors").symlink_to(victims)
    return [victims / "x.npy"], "vectors is in the way: it is a symlink lif-export did not make"


def _lock_links_outside(folder: Path) -> tuple[list[Path], str]:
    victim = folder.parent / "victim.txt"
    victim.write_text("victim")
    (folder / ".lif_export" / "lock").unlink()
    (folder / ".lif_export" / "lock").symlink_to(victim)
    return [victim], "cannot open the lock file"


def _private_is_a_file(folder: Path) -> tuple[list[Path], str]:
    folder.mkdir()
    (folder / ".lif_export").write_text("mine")
    return [folder / ".lif_export"], ".lif_export is in the way"


def _users_file_in_the_way(folder: Path) -> tuple[list[Path], str]:
    (folder / "lif_step.onnx").unlink()
    (folder / "lif_step.onnx").write_text("mine")
    return [folder / "lif_step.onnx"], "lif_step.onnx is in the way: it is changed since lif-export wrote it"


def _out_is_a_file(folder: Path) -> tuple[list[Path], str]:
    folder.write_text("mine")
    return [folder], "is a file, not a folder"


def _legacy_without_checksums(folder: Path) -> tuple[list[Path], str]:
    manifest = json.loads((folder / "manifest.json").read_text())
    for case in manifest["vectors"]:
        del case["files"]  # as an older lif-export wrote it: nothing proves the vector files
    plain = plain_copy(folder, folder.parent / "plain")
    (plain / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(folder)
    plain.rename(folder)
    return [folder / "manifest.json", folder / "vectors" / "constant_low" / "x.npy"], \
        "/input_0.pb is in the way: it is not written by lif-export"


REFUSED_FOLDERS = {f.__name__.strip("_"): f for f in [
    _issue_example, _manifest_links_outside, _vectors_link_outside, _lock_links_outside, _private_is_a_file,
    _users_file_in_the_way, _out_is_a_file, _legacy_without_checksums]}


@pytest.mark.parametrize("name", REFUSED_FOLDERS)
def test_export_refuses_a_folder_with_something_in_the_way(name, small, tmp_path, capsys, exported):
    folder = tmp_path / "E"
    if name not in ("issue_example", "manifest_links_outside", "private_is_a_file", "out_is_a_file"):
        shutil.copytree(small[0], folder, symlinks=True)
    kept, message = REFUSED_FOLDERS[name](folder)
    before = {p: p.read_bytes() for p in kept}
    assert cli(["export", "--out", str(folder), "--format", "onnx", "-q"]) == 2
    assert message in one_line(capsys.readouterr().err)
    assert {p: p.read_bytes() for p in kept} == before  # nothing deleted, nothing overwritten
    assert verifies(exported)


def test_the_issue_example_exports_once_the_foreign_manifest_is_gone(tmp_path, capsys):
    folder = tmp_path / "E"
    kept, _ = _issue_example(folder)
    (folder / "manifest.json").unlink()
    assert cli(["export", "--out", str(folder), "--format", "onnx", "-q"]) == 0
    assert kept[0].read_text() == "victim" and kept[1].read_text() == "notes"
    assert verifies(folder)


def _user_file_in_vectors(folder: Path) -> tuple[Path, str]:
    (folder / "vectors" / "mine.csv").write_text("mine")
    return folder / "vectors" / "mine.csv", "kept vectors/mine.csv: not written by lif-export"


def _tampered_artifact(folder: Path) -> tuple[Path, str]:
    changed = (folder / "lif_step.onnx").resolve()
    changed.write_bytes(changed.read_bytes() + b"\0")
    return changed, f"kept .lif_export/sets/{changed.parent.name}/lif_step.onnx: changed since lif-export wrote it"


def _legacy_with_users_files(folder: Path) -> tuple[Path, str]:
    plain = plain_copy(folder, folder.parent / "plain")
    shutil.rmtree(folder)
    plain.rename(folder)
    (folder / "vectors" / "mine.csv").write_text("mine")
    return folder / "vectors" / "mine.csv", "kept vectors/mine.csv: not written by lif-export"


def _legacy_manifest_names_a_users_file(folder: Path) -> tuple[Path, str]:
    """A valid manifest naming ``notes.txt`` with a checksum that is not the file's: not proven ours."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["artifacts"].append({**manifest["artifacts"][0], "name": "notes", "file": "notes.txt"})
    plain = plain_copy(folder, folder.parent / "plain")
    (plain / "manifest.json").write_text(json.dumps(manifest))
    (plain / "notes.txt").write_text("notes")
    shutil.rmtree(folder)
    plain.rename(folder)
    return folder / "notes.txt", "kept notes.txt: changed since lif-export wrote it"


KEPT_FILES = {f.__name__.strip("_"): f for f in [
    _user_file_in_vectors, _tampered_artifact, _legacy_with_users_files, _legacy_manifest_names_a_users_file]}


@pytest.mark.parametrize("name", KEPT_FILES)
def test_export_keeps_files_it_did_not_write_and_says_so(name, good, capsys):
    kept, note = KEPT_FILES[name](good)
    content = kept.read_bytes()
    assert cli(["export", "--out", str(good), "--format", "onnx", "-q", "--beta", "0.5"]) == 0
    assert any(line.startswith(f"note: {note}") for line in capsys.readouterr().err.splitlines())
    assert kept.read_bytes() == content
    assert verifies(good) and json.loads((good / "manifest.json").read_text())["neuron"]["beta"] == 0.5


def test_leftovers_of_killed_exports_are_removed_and_live_ones_kept(good, small):
    private = good / commit_mod.PRIVATE
    dead = private / "staging" / "20000101T000000-1-dead00"
    shutil.copytree(small[1], dead)  # a killed writer's half-written set: nobody holds its flock
    live = private / "staging" / "20000101T000000-2-live00"
    live.mkdir()
    (private / "current.tmp-dead").symlink_to("sets/x")
    (good / f"{commit_mod.TMP_LINK}lif_step.onnx").symlink_to("x")
    shutil.copytree(small[1], private / "sets" / "20000101T000000-3-orphan")  # complete, never switched to
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a writer that is still writing
        export(NeuronSpec(beta=0.5), good, formats=["onnx"])
        export(NeuronSpec(beta=0.6), good, formats=["onnx"])
    finally:
        os.close(fd)
    assert sorted(p.name for p in (private / "staging").iterdir()) == [live.name]
    assert len(list((private / "sets").iterdir())) == 2 and not list(private.glob("current.tmp-*"))
    assert not list(good.glob(f"{commit_mod.TMP_LINK}*")) and verifies(good)


# -- verify: tampered artifacts and golden vectors -------------------------------------------------------------


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _update_sha(folder: Path, rel: str) -> None:
    """The attacker updates the manifest's checksum of a file they changed."""
    manifest = _manifest(folder)
    for entry in [*manifest["artifacts"], *(f for case in manifest["vectors"] for f in case["files"])]:
        if entry["file"] == rel:
            entry["sha256"] = sha256_file(folder / rel)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _one_ulp(folder: Path, update: bool) -> None:
    path = folder / "vectors" / "random_unit" / "v_trace.npy"
    array = np.load(path)
    array.view(np.uint32)[5, 0, 0] += 1
    np.save(path, array)
    if update:
        _update_sha(folder, "vectors/random_unit/v_trace.npy")


def _garbage_pb(folder: Path) -> None:
    (folder / "vectors" / "random_unit" / "input_0.pb").write_bytes(b"\xff" * 64)
    _update_sha(folder, "vectors/random_unit/input_0.pb")


def _onnx_embedded_flip(folder: Path) -> None:
    model = onnx.load(folder / "lif_step.onnx")
    for prop in model.metadata_props:
        if prop.key == EMBEDDED_KEY:
            prop.value = prop.value.replace('"reset": "zero"', '"reset": "none"')
    onnx.save(model, folder / "lif_step.onnx")
    _update_sha(folder, "lif_step.onnx")


def _torchscript_embedded_flip(folder: Path) -> None:
    path = folder / "lif_step.pt"
    with zipfile.ZipFile(path) as archive:
        records = {info.filename: archive.read(info) for info in archive.infolist()}
    name = next(n for n in records if n.endswith(f"extra/{EMBEDDED_KEY}"))
    records[name] = records[name].replace(b'"reset": "zero"', b'"reset": "none"')
    with zipfile.ZipFile(path, "w") as archive:
        for n, data in records.items():
            archive.writestr(n, data)
    _update_sha(folder, "lif_step.pt")


def _truncated_pt(folder: Path) -> None:
    path = folder / "lif_step.pt"
    path.write_bytes(path.read_bytes()[:5000])
    _update_sha(folder, "lif_step.pt")


TAMPERED = {
    "one ulp in a golden .npy": (lambda f: _one_ulp(f, False), "vectors/random_unit/v_trace.npy: sha256"),
    "one ulp, checksum updated": (lambda f: _one_ulp(f, True), "vectors/random_unit/output_2.pb and "
                                 "vectors/random_unit/v_trace.npy: the same tensor with different bits"),
    "garbage golden .pb, checksum updated": (_garbage_pb, "vectors/random_unit/input_0.pb: not an ONNX TensorProto"),
    "a missing golden file": (lambda f: (f / "vectors" / "constant_low" / "x.npy").unlink(),
                              "vectors/constant_low/x.npy: missing"),
    "a missing artifact": (lambda f: (f / "lif_sequence.onnx").resolve().unlink(), "lif_sequence.onnx: missing"),
    "ONNX embedded manifest, checksum updated": (_onnx_embedded_flip, "lif_step.onnx: its embedded manifest "
                                                 "differs from manifest.json at neuron.reset: none vs zero"),
    "TorchScript embedded manifest, checksum updated": (_torchscript_embedded_flip, "lif_step.pt: its embedded "
                                                        "manifest differs from manifest.json at neuron.reset: none vs "
                                                        "zero"),
    "truncated .pt, checksum updated": (_truncated_pt, "lif_step.pt: not a readable torchscript artifact"),
}


@pytest.mark.parametrize("attack", TAMPERED, ids=list(TAMPERED))
def test_verify_finds_every_tampered_file(attack, exported, tmp_path, capsys):
    folder = tmp_path / "E"
    shutil.copytree(exported, folder, symlinks=True)
    tamper, message = TAMPERED[attack]
    tamper(folder)
    code = cli(["verify", str(folder), "--no-progress", "--backend", "numpy", "--case", "golden:constant_low"])
    out = capsys.readouterr()
    assert code == 1, out.out
    assert message in one_line("\n".join(line for line in out.out.splitlines() if line.startswith("CHECKSUM")))
    assert "Traceback" not in out.err and "FAILED" in out.out and verifies(exported)


def _bad_manifest_json(folder: Path) -> list[str]:
    (folder / "manifest.json").write_text("{not json")
    return [str(folder)]


def _manifest_escapes(folder: Path) -> list[str]:
    manifest = _manifest(folder)
    manifest["artifacts"][0]["file"] = "../outside.onnx"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return [str(folder)]


VERIFY_REFUSALS = {
    "manifest not JSON": (_bad_manifest_json, "is not valid JSON"),
    "manifest naming ../": (_manifest_escapes, "manifest is invalid at artifacts/0/file: '../outside.onnx' is not a "
                            "path relative to the models folder"),
    "--json is a folder": (lambda f: [str(f), "--json", str(f)], "--json"),
    "unknown --case": (lambda f: [str(f), "--case", "nope"], "case must be one of"),
}


@pytest.mark.parametrize("attack", VERIFY_REFUSALS, ids=list(VERIFY_REFUSALS))
def test_verify_refuses_with_one_line(attack, good, capsys):
    make_args, message = VERIFY_REFUSALS[attack]
    assert cli(["verify", *make_args(good), "--no-progress"]) == 2
    assert message in one_line(capsys.readouterr().err)


# -- the other commands ----------------------------------------------------------------------------------------


OTHER_COMMANDS = {
    "plot --out a folder": (lambda t: ["plot", "--out", str(t)], "--out"),
    "plot --steps 10000000": (lambda t: ["plot", "--steps", "10000000"], "--steps must be from 1 to 100,000"),
    "plot 40 neurons": (lambda t: ["plot", "--random", "--neurons", "40"], "--neurons must be from 1 to 32"),
    "bench --threads 1000": (lambda t: ["bench", "--threads", "1000"], "--threads must be from 1 to"),
    "bench --json a folder": (lambda t: ["bench", "--json", str(t)], "is a folder; give the path of a file"),
    "digits --out a file": (lambda t: ["digits", "--out", str(Path(__file__))], "is a file, not a folder"),
}


@pytest.mark.parametrize("attack", OTHER_COMMANDS, ids=list(OTHER_COMMANDS))
def test_other_commands_refuse_before_working(attack, tmp_path, capsys, exported):
    started = time.monotonic()
    assert cli(OTHER_COMMANDS[attack][0](tmp_path)) == 2
    assert OTHER_COMMANDS[attack][1] in one_line(capsys.readouterr().err)
    assert time.monotonic() - started < 5 and verifies(exported)


def test_a_network_that_cannot_be_exported_is_one_line(tmp_path, capsys):
    net = SpikingSequential(ExactLinear(4, 3), LIFLayer(3), torch.nn.Tanh())
    torch.save(net, tmp_path / "net.pt")
    code = cli(["export", "--network", str(tmp_path / "net.pt"), "--features", "4", "--out", str(tmp_path / "m")])
    assert code == 2
    assert "Tanh" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "m" / "manifest.json").exists()


# -- concurrent exports ----------------------------------------------------------------------------------------


def _hold_lock(folder: Path) -> int:
    fd = os.open(folder / commit_mod.PRIVATE / "lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_a_second_exporter_waits_for_the_commit(good):
    fd = _hold_lock(good)
    threading.Timer(0.3, os.close, [fd]).start()  # the other exporter finishes committing
    lines: list[str] = []
    export(NeuronSpec(beta=0.5), good, formats=["onnx"], report=lines.append)
    assert any(line.startswith("note: waiting for another lif-export") for line in lines)
    assert verifies(good)


def test_a_second_exporter_gives_up_after_the_timeout(good, capsys, monkeypatch):
    monkeypatch.setattr(commit_mod, "LOCK_TIMEOUT", 0.2)
    before = public_view(good)
    fd = _hold_lock(good)
    try:
        assert cli(["export", "--out", str(good), "--format", "onnx", "-q", "--beta", "0.5"]) == 2
    finally:
        os.close(fd)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("note: waiting for another lif-export")
    assert "is still committing into" in one_line("\n".join(lines[1:]))
    assert public_view(good) == before and verifies(good)


def test_concurrent_exporters_and_a_reader_never_see_half_a_set(good, small, tmp_path, monkeypatch):
    """Two processes commit sets of two neurons into one folder, 6 times each, as fast as they
    can; meanwhile this process reads the folder the way verify does (the set manifest.json
    resolves to). Every set it finds is complete and matches its manifest, whatever moment it
    looks at it (a set discarded meanwhile disappears as a whole)."""
    monkeypatch.setattr(commit_mod, "_fsync", lambda path: None)  # durability is not what is tested here
    sources = [small[1], shutil.copytree((good / "manifest.json").resolve().parent, tmp_path / "set")]
    children = []
    for source in sources:
        pid = os.fork()
        if pid == 0:  # file operations only after the fork
            code = 1
            try:
                for _ in range(6):
                    _commit_here(good, source)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        children.append(pid)
    reads, statuses = 0, {}
    while len(statuses) < len(children):
        for pid in set(children) - set(statuses):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                statuses[pid] = status
        folder = pinned_folder(good)
        try:
            failures = check_checksums(folder, load_manifest(folder)).failures
        except (OSError, ManifestError):
            failures = ["unreadable"]
        assert not failures or not folder.exists(), failures  # only a whole set can go
        reads += 1
        time.sleep(0.01)
    assert list(statuses.values()) == [0, 0] and reads > 3
    assert _manifest(good)["neuron"]["beta"] in (0.5, 0.8) and verifies(good)
    private = good / commit_mod.PRIVATE
    assert not list((private / "staging").iterdir()) and len(list((private / "sets").iterdir())) == 2


# -- commits killed at every step ------------------------------------------------------------------------------

#: What commit changes on disk; the child is killed before the n-th of these.
CHANGES = ("replace", "rename", "symlink", "link", "unlink", "rmdir")


class _Killer:
    def __init__(self, at: int) -> None:
        self.at, self.count = at, 0

    def wrap(self, function):
        def change(*args, **kwargs):
            self.count += 1
            if self.count == self.at:
                os.kill(os.getpid(), signal.SIGKILL)
            return function(*args, **kwargs)

        return change


class _Proxy:
    def __init__(self, real, killer: _Killer, names) -> None:
        self._real, self._killer, self._names = real, killer, names

    def __getattr__(self, name):
        value = getattr(self._real, name)
        return self._killer.wrap(value) if name in self._names else value


def _commit_in_child(folder: Path, source: Path, at: int, after: float | None = None) -> tuple[bool, int]:
    """Fork; the child commits the set ``source`` into ``folder`` and is SIGKILL-ed before its
    ``at``-th change (or ``after`` seconds, wherever it is). Returns ``(killed, changes made)``."""
    pid = os.fork()
    if pid == 0:  # the child: file operations only (no torch, no onnxruntime after the fork)
        code = 255
        try:
            killer = _Killer(at)
            commit_mod.os = _Proxy(os, killer, CHANGES)
            commit_mod.shutil = _Proxy(shutil, killer, ("rmtree",))
            commit_mod._exchange = killer.wrap(commit_mod._exchange)
            manifest = json.loads((source / "manifest.json").read_text())
            with commit_mod.Staging(folder, lambda line: None) as staging:
                shutil.copytree(source, staging.path, dirs_exist_ok=True)
                commit_mod.commit(staging, manifest, lambda line: None)
            code = min(killer.count, 200)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    if after is not None:
        time.sleep(after)
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True, -1
    assert os.WEXITSTATUS(status) != 255, "the child failed (traceback above)"
    return False, os.WEXITSTATUS(status)


def _commit_here(folder: Path, source: Path) -> list[str]:
    def build(staging: Path) -> dict:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        return json.loads((source / "manifest.json").read_text())

    return commit_mod.write_set(folder, build, lambda line: None)[1]


@pytest.mark.parametrize("layout", ["links", "plain files of an older lif-export"])
def test_a_commit_killed_at_any_step_leaves_one_complete_set(layout, small, tmp_path, monkeypatch):
    good, source = small
    monkeypatch.setattr(commit_mod, "_fsync", lambda path: None)  # durability is not what is tested here

    def fresh() -> Path:
        folder = tmp_path / "E"
        shutil.rmtree(folder, ignore_errors=True)
        if layout == "links":
            shutil.copytree(good, folder, symlinks=True)
        else:
            plain_copy(good, folder)
        (folder / "vectors" / "mine.csv").write_text("mine")  # the user's, never lost
        return folder

    killed, changes = _commit_in_child(fresh(), source, 10**6)
    assert not killed and changes > 3
    points = sorted(at for at in {*range(1, 7), *range(7, changes, 10), *range(changes - 3, changes + 1)}
                    if 1 <= at <= changes)
    moments = np.random.default_rng(7).uniform(0.0, 0.3, 3)  # and at random moments: hashing, writing, ...
    for at in [*points, *moments]:
        folder = fresh()
        killed, _ = _commit_in_child(folder, source, 10**6, at) if isinstance(at, float) else \
            _commit_in_child(folder, source, at)
        assert killed or isinstance(at, float), at
        assert verifies(folder), f"killed before change {at}: the folder does not verify"
        assert _manifest(folder)["neuron"]["beta"] in (0.8, 0.5)
        assert (folder / "vectors" / "mine.csv").read_text() == "mine"
        _commit_here(folder, source)  # the next export finishes the clean-up
        private = folder / commit_mod.PRIVATE
        assert not list((private / "staging").iterdir()) and not list(private.glob("current.tmp-*"))
        assert not list(folder.glob(f"{commit_mod.TMP_LINK}*")) and len(list((private / "sets").iterdir())) <= 2
        assert verifies(folder) and _manifest(folder)["neuron"]["beta"] == 0.5, at
        assert (folder / "vectors" / "mine.csv").read_text() == "mine"
