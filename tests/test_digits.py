"""The trained example: accuracy on the bundled digits and identical predictions in every backend."""

import pytest

pytest.importorskip("sklearn", reason="the digits example needs scikit-learn (the [test] extra installs it)")

from lif_export.examples.digits import run_example


def test_digits_example_reaches_its_accuracy_with_identical_predictions(tmp_path):
    lines = []
    summary = run_example(tmp_path / "digits", epochs=15, steps=12, figure=tmp_path / "raster.png",
                          report=lines.append, progress=False)
    assert summary["test_accuracy"] >= 0.90, lines[0]
    assert summary["verify_ok"]
    assert len(summary["backends"]) == 5
    for name, row in summary["backends"].items():
        assert row["identical_to_eager"], name
        assert row["accuracy"] == summary["test_accuracy"]
    assert "MISMATCH" not in summary["cpp"].values()
    assert (tmp_path / "raster.png").read_bytes()[:4] == b"\x89PNG"
