"""Corrupt chunks: every chunk carries a crc32c checksum; a truncated or flipped chunk is named
(store, array, chunk index) instead of a raw decode error; ``gbdist check`` lists it and
``--repair`` clears it, so a rerun restores the store bit for bit."""

from __future__ import annotations

from pathlib import Path

import zarr
from typer.testing import CliRunner

from gbdist.cli import app
from gbdist.workflows.check import check_store
from gbdist.workflows.job import run_job

from conftest import array_digests, make_job, toy_inputs

runner = CliRunner()


def _text(result) -> str:
    return " ".join(result.output.split())


def test_every_stage_array_carries_a_checksum(store_copy):
    store, _ = store_copy
    group = zarr.open_group(store, mode="r")
    names = [name for name, a in group.members(max_depth=None) if isinstance(a, zarr.Array)]
    assert "soap" in names and any(n.endswith("/label") for n in names)
    for name in names:
        codecs = [c["name"] for c in group[name].metadata.to_dict()["codecs"]]
        assert codecs[-1] == "crc32c", (name, codecs)


def test_a_truncated_soap_chunk_is_named_checked_and_repaired_bit_for_bit(tmp_path, scheduler_address):
    inputs = toy_inputs(tmp_path, 3, seed=40)
    store = tmp_path / "s.zarr"
    job = make_job(store, inputs, scheduler_address, chunk_rows=16, stages=["soap", "asr", "lae"])
    run_job(job)
    clean = array_digests(store)
    chunk = Path(store, "soap", "c", "0", "0")
    chunk.write_bytes(chunk.read_bytes()[:1000])  # as `head -c 1000` would leave it
    label = next(Path(store).glob("lae_eps_*/label/c/1"))
    flipped = bytearray(label.read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    label.write_bytes(bytes(flipped))

    lae = runner.invoke(app, ["lae", "--store", str(store), "--eps", "0.05", "--scheduler", scheduler_address,
                              "--no-verbose"])
    assert lae.exit_code == 2 and f"{store}: array soap, chunk (0, 0): corrupt or truncated" in _text(lae), lae.output
    assert "Traceback" not in lae.output

    found = runner.invoke(app, ["check", "--store", str(store), "--no-verbose"])
    assert found.exit_code == 1
    assert "bad array soap, chunk (0, 0)" in _text(found) and "lae_eps_0.0320/label, chunk (1,)" in _text(found)
    assert sorted(check_store(str(store)).bad) == [("lae_eps_0.0320/label", (1,)), ("soap", (0, 0))]

    repaired = runner.invoke(app, ["check", "--store", str(store), "--repair", "--no-verbose"])
    assert repaired.exit_code == 0, repaired.output
    assert "SOAP chunk(s) [0]: flags cleared" in _text(repaired) and "eps ['0.0320'] forgotten" in _text(repaired)
    group = zarr.open_group(str(store), mode="r")
    assert group["progress/soap"][:].tolist() == [0] + [1] * (group["progress/soap"].shape[0] - 1)
    assert check_store(str(store)).bad == []

    report = run_job(job)
    assert report.soap.chunks_computed == 1 and report.lae is not None
    assert array_digests(store) == clean
