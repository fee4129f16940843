"""gbdist bench on toy boundaries: every figure the README quotes is produced, finite and consistent."""

import json
import math

import yaml
import zarr
from typer.testing import CliRunner

from gbdist.cli import app

runner = CliRunner()

KEYS = {"olmsted_total_s", "soap_efficiency", "soap_efficiency_vs_bare", "speedup_2v1", "lae_s", "lae_vs_numpy", "soap_read_s",
        "parse_mb_s_per_core", "peak_rss_gib_1x", "peak_rss_gib_10x", "scale_factor", "predict_s", "predict_rows_per_s",
        "soap_rows_per_s_per_core", "soap_vs_bare", "passes_asr", "passes_lae", "n_unique",
        "growth_soap", "growth_asr", "growth_lae", "asr_lae_share_of_soap_10x", "passes_asr_10x", "passes_lae_10x",
        *(f"site_{stage}_{x}" for stage in ("energy", "fit", "fit_external", "fit_external_scaled")
          for x in ("s", "rows", "peak_rss_gib")),
        *(f"site_{stage}_rounds" for stage in ("fit", "fit_external", "fit_external_scaled")), "site_scale_factor"}
FEATOMIC_KEYS = {"olmsted_total_s_featomic", "soap_rows_per_s_per_core_featomic", "soap_vs_bare_featomic",
                 "featomic_vs_dscribe_rows_per_s", "n_unique_featomic", "eps_featomic", "n_unique_featomic_default_eps"}
HUGE_KEYS = {"huge_atoms", "huge_n_lae", "huge_domains", "huge_total_s", "huge_select_s", "huge_soap_s", "huge_peak_rss_gib",
             "huge_soap_rows_per_s_per_core", "olmsted_soap_rows_per_s_per_core", "huge_vs_olmsted_soap_rate",
             "huge_file_reads_per_atom", "huge_passes_asr", "huge_passes_lae"}
PASSES = {"huge_passes_asr", "huge_passes_lae", "passes_asr", "passes_lae", "passes_asr_10x", "passes_lae_10x"}


def test_bench_writes_every_figure(learning_store, tmp_path):
    try:
        import featomic  # noqa: F401
        with_featomic = True
    except ImportError:
        with_featomic = False
    store, labels = learning_store
    dumps = sorted(store.parent.glob("gb*.dump"))[:8]
    bench_file = tmp_path / "bench.yaml"
    bench_file.write_text(yaml.safe_dump({"inputs": [str(p) for p in dumps], "labels": str(labels), "workers": 2,
                                          "memory_limit": "2GiB", "speedup_dumps": 4, "speedup_repeats": 2,
                                          "bare_dumps": 2, "scale": 2, "kernel_fine_eps": 0.02,
                                          "predict_dumps": 3, "featomic": with_featomic, "featomic_eps": 0.05,
                                          "huge_atoms": 5000, "split_atoms": 2000, "domain_atoms": 500,
                                          "site_scale": 3}))
    out = tmp_path / "bench"
    result = runner.invoke(app, ["bench", str(bench_file), "--out", str(out), "--no-verbose"])
    assert result.exit_code == 0, result.output
    bench = json.loads((out / "bench.json").read_text())
    summary = bench["summary"]
    eps = bench["numpy_leaders"]["eps"]
    assert set(summary) == KEYS | HUGE_KEYS | {f"search_vs_numpy_eps{eps:.4f}", "search_vs_numpy_eps0.0200"} | (
        FEATOMIC_KEYS if with_featomic else set())
    assert all(math.isfinite(v) and v > 0 for k, v in summary.items() if k not in PASSES)
    assert summary["passes_asr"] == summary["passes_asr_10x"] == 0, "the ASR comes from the SOAP tasks' sums"
    assert summary["passes_lae"] == summary["passes_lae_10x"] == 2, "discovery and assignment read each row once"
    assert summary["scale_factor"] == 2
    # the huge structure: 160 atoms tiled 6 × 6 in its periodic plane, cut into domains, its file read once
    assert summary["huge_atoms"] == 36 * 160 and summary["huge_domains"] > 1
    assert summary["huge_file_reads_per_atom"] == 1.0
    assert bench["scale_up"]["n_gb"] == 2 * bench["olmsted"]["n_gb"]
    stages = [f["stage"] for f in bench["olmsted"]["figures"]]
    assert stages == ["select", "soap", "asr", "lae", "learn", "site_energy", "site_fit", "site_fit_external",
                      "site_fit_external_scaled"]
    assert summary["site_energy_rows"] > summary["site_fit_rows"] == summary["site_fit_external_rows"] \
        == bench["olmsted"]["n_lae"]  # every atom; every row
    assert summary["site_fit_external_scaled_rows"] == 3 * summary["site_fit_external_rows"]
    assert summary["site_scale_factor"] == 3
    assert 0 < bench["bare"]["rows"] < bench["olmsted"]["n_lae"]
    assert bench["numpy_leaders"]["n_unique"] >= 1
    assert all(len(w) == 2 for w in bench["speedup"]["walls"].values())
    for kernel in bench["leader_kernels"].values():  # both are the same greedy rule over the same rows
        assert kernel["n_unique"] == kernel["n_unique_numpy"] >= 1
    assert bench["leader_kernels"][f"{eps:.4f}"]["n_unique"] == bench["numpy_leaders"]["n_unique"]
    assert bench["soap_read"]["gb"] == bench["olmsted"]["n_lae"] * 1014 * 4 / 1e9, "every SOAP row read once"
    assert "| speedup_2v1 |" in (out / "bench.md").read_text()
    if with_featomic:  # featomic's data path at its own eps, and the count at the default one
        assert summary["eps_featomic"] == 0.05 and bench["olmsted_featomic"]["default_eps"] == 0.032
        chosen = zarr.open_group(str(out / "olmsted-featomic.zarr"), mode="r").attrs["lae_chosen"]
        assert float(chosen) == 0.05, "the count at the default eps leaves featomic's eps chosen"


def test_every_bench_file_in_jobs_is_a_valid_bench_config():
    from pathlib import Path

    from gbdist.tools.bench import load_bench

    files = sorted((Path(__file__).parents[1] / "jobs").glob("bench-*.yaml"))
    assert files
    for path in files:  # extra keys are refused: a misspelt option fails here, not an hour into a run
        load_bench(path)
