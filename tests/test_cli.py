"""The command line: job files, exit codes and summaries."""

import zarr
from typer.testing import CliRunner

from gbdist.cli import app
from gbdist.workflows.job import load_job

runner = CliRunner()


def test_job_file_with_unknown_keys_or_wrong_types(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("store: s.zarr\ninputs: [a.dump]\nsoap: {n_max: many, r_kut: 5}\nbogus: 1\n")
    result = runner.invoke(app, ["run", str(job)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "job.yaml: invalid job file" in text
    for key in ("soap.n_max", "soap.r_kut", "bogus"):
        assert key in text


def test_job_file_must_be_a_mapping_and_valid_yaml(tmp_path):
    job = tmp_path / "list.yaml"
    job.write_text("- 1\n- 2\n")
    assert runner.invoke(app, ["run", str(job)]).exit_code == 2
    job.write_text("store: [unclosed\n")
    result = runner.invoke(app, ["run", str(job)])
    assert result.exit_code == 2 and "not valid YAML" in " ".join(result.output.split())


def test_relative_paths_are_taken_from_the_job_file(tmp_path):
    (tmp_path / "jobs").mkdir()
    job = tmp_path / "jobs" / "j.yaml"
    job.write_text("store: ../out/s.zarr\ninputs: [../data/*.dump]\n")
    cfg = load_job(job)
    assert cfg.store == str(tmp_path / "out" / "s.zarr")
    assert cfg.inputs == [str(tmp_path / "data" / "*.dump")]


def test_soap_command_reports_a_bad_file_and_finishes_the_rest(tmp_path, toy_dumps, scheduler_address):
    bad = tmp_path / "one_atom.dump"
    bad.write_text("ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n1\nITEM: BOX BOUNDS ss pp pp\n0 1\n0 1\n0 1\n"
                   "ITEM: ATOMS id type x y z c_cna\n1 1 0.5 0.5 0.5 1\n")
    store = tmp_path / "s.zarr"
    result = runner.invoke(app, ["soap", *map(str, toy_dumps), str(bad), "--store", str(store), "--element", "Ni",
                                 "--scheduler", scheduler_address, "--no-verbose"])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "one_atom.dump: no atom is fcc, bcc or hcp" in text
    assert "1 failure(s)" in text
    g = zarr.open_group(str(store), mode="r")
    assert g["gb/id"].shape == (len(toy_dumps),) and g.attrs["stages"]["asr"]["done"]


def test_missing_input_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["soap", str(tmp_path / "nothing*.dump"), "--store", str(tmp_path / "s.zarr")])
    assert result.exit_code == 2 and "no such file" in " ".join(result.output.split())


def test_bad_sweep_argument():
    result = runner.invoke(app, ["lae", "--store", "x.zarr", "--sweep", "0.08:0.01"])
    assert result.exit_code == 2
