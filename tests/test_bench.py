"""gbdist bench on toy boundaries: every figure the README quotes is produced, finite and consistent."""

import json
import math

import yaml
from typer.testing import CliRunner

from gbdist.cli import app

runner = CliRunner()

KEYS = {"olmsted_total_s", "soap_efficiency", "soap_efficiency_vs_bare", "speedup_2v1", "lae_s", "lae_vs_numpy", "soap_read_s",
        "parse_mb_s_per_core", "peak_rss_gib_1x", "peak_rss_gib_10x", "scale_factor", "predict_s", "predict_rows_per_s"}


def test_bench_writes_every_figure(learning_store, tmp_path):
    store, labels = learning_store
    dumps = sorted(store.parent.glob("gb*.dump"))[:8]
    bench_file = tmp_path / "bench.yaml"
    bench_file.write_text(yaml.safe_dump({"inputs": [str(p) for p in dumps], "labels": str(labels), "workers": 2,
                                          "memory_limit": "2GiB", "speedup_dumps": 4, "speedup_repeats": 2,
                                          "bare_dumps": 2, "scale": 2, "kernel_fine_eps": 0.02,
                                          "predict_dumps": 3}))
    out = tmp_path / "bench"
    result = runner.invoke(app, ["bench", str(bench_file), "--out", str(out), "--no-verbose"])
    assert result.exit_code == 0, result.output
    bench = json.loads((out / "bench.json").read_text())
    summary = bench["summary"]
    eps = bench["numpy_leaders"]["eps"]
    assert set(summary) == KEYS | {f"search_vs_numpy_eps{eps:.4f}", "search_vs_numpy_eps0.0200"}
    assert all(math.isfinite(v) and v > 0 for v in summary.values())
    assert summary["scale_factor"] == 2
    assert bench["scale_up"]["n_gb"] == 2 * bench["olmsted"]["n_gb"]
    stages = [f["stage"] for f in bench["olmsted"]["figures"]]
    assert stages == ["select", "soap", "asr", "lae", "learn"]
    assert 0 < bench["bare"]["rows"] < bench["olmsted"]["n_lae"]
    assert bench["numpy_leaders"]["n_unique"] >= 1
    assert len(bench["speedup"]["walls_1w"]) == len(bench["speedup"]["walls_2w"]) == 2
    for kernel in bench["leader_kernels"].values():  # both are the same greedy rule over the same rows
        assert kernel["n_unique"] == kernel["n_unique_numpy"] >= 1
    assert bench["leader_kernels"][f"{eps:.4f}"]["n_unique"] == bench["numpy_leaders"]["n_unique"]
    assert bench["soap_read"]["gb"] == bench["olmsted"]["n_lae"] * 1014 * 4 / 1e9, "every SOAP row read once"
    assert "| speedup_2v1 |" in (out / "bench.md").read_text()
