"""The benchmark's own equality check, on a small size (timings are not asserted)."""

import json

from lif_export.bench.runner import format_results, run_bench
from lif_export.cli import main as cli


def test_every_path_gives_the_same_bits():
    data = run_bench(small=True, rounds=1, threads=[1], report=lambda line: None)
    rows = data["results"]
    assert {r["workload"] for r in rows} == {"W1", "W2", "W3"}
    timed = [r for r in rows if r["median_ms"] is not None]
    checked = [r for r in timed if not r["path"].startswith("C++")]  # the runners check their own bits
    assert len(checked) >= 12
    assert all(r["identical"] for r in checked), [r["path"] for r in checked if not r["identical"]]
    assert any(r["path"].startswith("native") for r in rows)
    assert "same bits" in format_results(data)


def test_bench_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli(["bench", "--small", "--rounds", "1", "--threads", "1", "--workload", "W2", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["machine"]["torch"] and all(r["workload"] == "W2" for r in data["results"])
    assert "OnnxStepStream" in capsys.readouterr().out
    assert cli(["bench", "--threads", "x"]) == 2
