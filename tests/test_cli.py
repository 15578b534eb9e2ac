"""The command line as a user runs it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lif_export.backends import REGISTRY
from lif_export.cli import main as cli


@pytest.mark.parametrize("command", [[], ["export"], ["verify"], ["plot"], ["bench"], ["digits"], ["triton"]])
def test_help_works_for_every_command(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: lif-export" in capsys.readouterr().out


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "lif_export.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "lif-export 0.1.0" in result.stdout


def test_plot_writes_a_png(tmp_path, capsys):
    out = tmp_path / "dynamics.png"
    assert cli(["plot", "--current", "0.15", "--current", "0.5", "--steps", "60", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    random_out = tmp_path / "random.png"
    assert cli(["plot", "--random", "--neurons", "2", "--out", str(random_out)]) == 0
    assert random_out.stat().st_size > 1000


@pytest.mark.parametrize(
    "args, message",
    [
        (["plot", "--steps", "0"], "--steps must be from 1 to 100,000, got 0"),
        (["plot", "--beta", "-1"], "beta must satisfy 0 <= beta <= 1, got -1.0"),
        (["plot", "--random", "--neurons", "0"], "--neurons must be from 1 to 32, got 0"),
        (["export", "--state-dict", "missing.pt"], "--state-dict 'missing.pt' does not exist"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli(args) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_verify_help_lists_every_registered_backend_family(capsys):
    with pytest.raises(SystemExit):
        cli(["verify", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert all(family in help_text for family in REGISTRY)
    assert "--quick" not in help_text  # it did nothing: --full or nothing


def test_export_writes_the_formats_asked_for(tmp_path, capsys):
    assert cli(["export", "--out", str(tmp_path), "--format", "onnx", "--format", "onnx", "-q"]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [a["format"] for a in manifest["artifacts"]] == ["onnx", "onnx"]
    with pytest.raises(SystemExit) as exit_info:
        cli(["export", "--out", str(tmp_path), "--format", "nope"])
    assert exit_info.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_name_goes_to_the_formats_that_write_a_c_library(tmp_path, capsys):
    assert cli(["export", "--out", str(tmp_path / "a"), "--format", "onnx", "--name", "mylif", "-q"]) == 2
    assert "--name is the name of the generated C library: add --format c" in capsys.readouterr().err
    assert cli(["export", "--out", str(tmp_path / "b"), "--format", "c", "--features", "4", "--name", "mylif",
                "-q"]) == 0
    assert (tmp_path / "b" / "mylif.c").is_file() and (tmp_path / "b" / "mylif.h").is_file()


def test_triton_subcommand(exported, tmp_path, capsys):
    code = cli(["triton", str(exported), "--out", str(tmp_path / "repo"), "--feature-size", "neurons=4"])
    assert code == 0 and "wrote a Triton model repository" in capsys.readouterr().out


def test_export_prints_progress_and_summary(tmp_path, capsys):
    assert cli(["export", "--out", str(tmp_path), "--reset", "subtract"]) == 0
    out = capsys.readouterr().out
    assert "[1/10] lif_step.onnx" in out and "vectors/near_threshold" in out
    assert "neuron: reset=subtract dtype=float32" in out


def test_export_script_is_the_same_command(tmp_path):
    script = Path(__file__).parents[1] / "scripts" / "export_models.py"
    result = subprocess.run([sys.executable, str(script), "--out", str(tmp_path), "-q"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "manifest.json").is_file()


def test_digits_command(tmp_path, capsys):
    assert cli(["digits", "--epochs", "0"]) == 2
    assert "--epochs must be >= 1, got 0" in capsys.readouterr().err
    code = cli(["digits", "--epochs", "1", "--steps", "3", "--out", str(tmp_path / "digits"),
                "--figure", str(tmp_path / "raster.png")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "test accuracy" in out and "predictions identical to eager: NO" not in out
    assert (tmp_path / "digits" / "network_step.onnx").is_file() and (tmp_path / "raster.png").is_file()
