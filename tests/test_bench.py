"""The benchmark's own equality check, on a small size (timings are not asserted)."""

import json

from lif_export.bench.runner import format_results, run_bench
from lif_export.cli import main as cli


def test_every_path_gives_the_same_bits():
    data = run_bench(small=True, rounds=1, threads=[1], report=lambda line: None)
    rows = data["results"]
    assert {r["workload"] for r in rows} == {"W1", "W2", "W3", "W4", "W5"}
    timed = [r for r in rows if r["median_ms"] is not None]
    checked = [r for r in timed if r["identical"] is not None]
    assert len(checked) >= 25
    assert all(r["identical"] for r in checked), [r["path"] for r in checked if not r["identical"]]
    assert any(r["path"].startswith("native") for r in rows)
    # the timing references of the network workloads (an nn.Linear twin) are not compared
    assert [r["identical"] for r in rows if "twin" in r["path"]] == [None, None]
    w5 = [r for r in timed if r["workload"] == "W5"]
    assert all(r["images_per_s"] > 0 for r in w5)
    in_process = [r for r in timed if r["cpu_median_ms"] is not None and not r["path"].startswith("native")]
    assert all(r["peak_rss_mb"] >= r["rss_growth_mb"] for r in in_process if r["workload"] in ("W1", "W3"))
    machine = data["machine"]
    assert "-march=native" in machine["native_reference"] or machine["native_reference"].startswith("not")
    text = format_results(data)
    assert "same bits" in text and machine["cpu"] in text


def test_bench_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli(["bench", "--small", "--rounds", "1", "--threads", "1", "--workload", "W2", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["machine"]["torch"] and all(r["workload"] == "W2" for r in data["results"])
    assert "OnnxStepStream" in capsys.readouterr().out
    assert cli(["bench", "--threads", "x"]) == 2
