"""The select + SOAP + ASR stages: store contents, the schema, and the real-data checks."""

import lzma

import ase.io
import numpy as np
import pytest
import xarray as xr
import zarr
from distributed import Client
from dscribe.descriptors import SOAP

from gbdist.compute.select import select_gb_region
from gbdist.compute.soap import SoapParams, soap_rows
from gbdist.errors import StoreError
from gbdist.io import ReadParams, read_structure
from gbdist.stages.lae import run_lae_stage
from gbdist.workflows.job import run_job

from conftest import BACKENDS, OLMSTED_READ, OLMSTED_SELECT, array_digests, make_job, olmsted_dump


def test_toy_store_rows_match_direct_soap(tmp_path, toy_dumps, scheduler_address):
    store = tmp_path / "toy.zarr"
    report = run_job(make_job(store, toy_dumps, scheduler_address, chunk_rows=64))
    assert not report.failures
    g = zarr.open_group(str(store), mode="r")
    offsets = g["gb/offset"][:]
    assert report.soap.chunks_computed == g["progress/soap"].shape[0] > len(toy_dumps)  # GBs straddle chunks
    for i, path in enumerate(toy_dumps):
        s = read_structure(path)
        sel = select_gb_region(s)
        rows = slice(offsets[i], offsets[i + 1])
        assert g["gb/id"][i] == path.name.split(".")[0]
        np.testing.assert_array_equal(g["lae/atom"][rows], s.ids[sel.centres])
        np.testing.assert_array_equal(g["lae/gb"][rows], i)
        direct, _ = soap_rows(s, sel.centres, SoapParams(crop=False), ["Ni"], 0)
        raw = g["soap"][rows] * g["lae/soap_norm"][rows][:, None]
        np.testing.assert_allclose(raw, direct, rtol=1e-5, atol=1e-5 * np.abs(direct).max())
        np.testing.assert_allclose(np.linalg.norm(g["soap"][rows], axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(g["asr"][i], g["soap"][rows].mean(0), atol=1e-6)


def test_asr_comes_from_the_soap_tasks_partial_sums_and_an_older_store_reads_the_rows(
        tmp_path, toy_dumps, scheduler_address):
    from dask.distributed import Client

    from gbdist.stages.asr import run_asr_stage
    from gbdist.store.schema import ASR_PARTIAL_GB, ASR_PARTIAL_SUM, RowPlan, read_asr_partials

    store = tmp_path / "toy.zarr"
    run_job(make_job(store, toy_dumps, scheduler_address, chunk_rows=64, stages=["soap", "asr"]))
    g = zarr.open_group(str(store), mode="r+")
    assert g.attrs["stages"]["asr"]["soap_passes"] == 0  # no row of soap read
    from_partials = g["asr"][:]
    plan = RowPlan(g["gb/offset"][:], 64)  # the asr stage takes each chunk's GBs from the plan: those written
    assert [list(gbs) for gbs, _ in read_asr_partials(g, plan)] == [list(i[i >= 0]) for i in g[ASR_PARTIAL_GB][:]]
    del g[ASR_PARTIAL_GB], g[ASR_PARTIAL_SUM]  # as a store written before the partial sums
    with Client(scheduler_address) as client:
        run_asr_stage(client, str(store), force=True)
    g = zarr.open_group(str(store), mode="r")
    assert g.attrs["stages"]["asr"]["soap_passes"] == 1.0
    np.testing.assert_array_equal(g["asr"][:], from_partials)


def featomic_full_block(atoms, centres, n_max: int, l_max: int):
    """featomic's own power spectrum of ``centres`` as one block, every (n_1, n_2) and every species
    pair (r_cut 5 Å, sigma 0.5 Å, shifted-cosine smoothing 0.5 Å): what gbdist's rows are checked against."""
    import featomic
    import metatensor

    calc = featomic.SoapPowerSpectrum(
        cutoff={"radius": 5.0, "smoothing": {"type": "ShiftedCosine", "width": 0.5}},
        density={"type": "Gaussian", "width": 0.5},
        basis={"type": "TensorProduct", "max_angular": l_max, "radial": {"type": "Gto", "max_radial": n_max - 1}})
    tensor = calc.compute(atoms, selected_samples=metatensor.Labels(["atom"], centres.reshape(-1, 1).astype(np.int32)))
    return tensor.keys_to_samples("center_type").keys_to_properties(["neighbor_1_type", "neighbor_2_type"]).block()


def test_featomic_backend_gives_its_own_soap_rows_and_a_store_refuses_a_mixed_backend(
        tmp_path, toy_dumps, scheduler_address):
    pytest.importorskip("featomic", reason="featomic is an optional extra (pip install -e '.[featomic]')")
    import featomic

    from gbdist.compute.soap import n_features

    store = tmp_path / "featomic.zarr"
    run_job(make_job(store, toy_dumps, scheduler_address, chunk_rows=64, soap={"backend": "featomic", "n_max": 6,
                                                                              "l_max": 4}))
    g = zarr.open_group(str(store), mode="r")
    assert g.attrs["soap_backend"] == {"name": "featomic", "version": featomic.__version__, "layout": "n1<=n2, centre order"}
    params = SoapParams(backend="featomic", n_max=6, l_max=4)
    assert g["soap"].shape[1] == n_features(params, ["Ni"]) == 6 * 7 // 2 * 5  # n_1 ≤ n_2 of featomic's 6 × 6
    offsets = g["gb/offset"][:]
    for i, path in enumerate(toy_dumps[:2]):  # featomic itself on the whole structure, made periodic by hand
        s = read_structure(path)
        centres = select_gb_region(s).centres
        atoms = s.to_ase()
        atoms.positions[:, 0] += 20.0
        atoms.cell[0, 0] = atoms.positions[:, 0].max() + 20.0
        atoms.pbc = True
        direct = featomic_full_block(atoms, centres, n_max=6, l_max=4)
        rows = slice(offsets[i], offsets[i + 1])
        raw = g["soap"][rows] * g["lae/soap_norm"][rows][:, None]
        n_1, n_2 = direct.properties.column("n_1"), direct.properties.column("n_2")
        upper = n_1 <= n_2
        packed = direct.values[:, upper] * np.where(n_1 < n_2, np.sqrt(2), 1.0)[upper]
        scale = np.abs(direct.values).max()
        np.testing.assert_allclose(raw, packed, rtol=1e-5, atol=1e-5 * scale)
        gram = direct.values @ direct.values.T  # the packing keeps every inner product
        np.testing.assert_allclose(raw.astype(np.float64) @ raw.T, gram, rtol=1e-5, atol=1e-5 * np.abs(gram).max())
    with pytest.raises(StoreError, match="other read/select/SOAP parameters"):
        run_job(make_job(store, toy_dumps, scheduler_address, chunk_rows=64, soap={"n_max": 6, "l_max": 4}))
    old_stores = {None: r"layout full n1 × n2: every \(n_1, n_2\)",  # the layouts of older gbdist versions
                  "n1<=n2": r"layout n1<=n2: each GB's rows in ascending atom index"}
    for layout, why in old_stores.items():
        zarr.open_group(str(store)).attrs["soap_backend"] = {"name": "featomic", "version": featomic.__version__} | (
            {"layout": layout} if layout else {})
        with pytest.raises(StoreError, match=f"featomic rows of an older gbdist \\({why}.*this gbdist writes n1<=n2, "
                                             "centre order; use a new store"):
            run_job(make_job(store, toy_dumps, scheduler_address, chunk_rows=64, soap={"backend": "featomic",
                                                                                      "n_max": 6, "l_max": 4}))
        with Client(scheduler_address) as client, pytest.raises(StoreError, match="older gbdist.*recompute the store"):
            run_lae_stage(client, str(store), 0.05)  # as `gbdist lae` runs it


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_follow_the_centres_in_the_order_given(backend):
    from ase.build import bulk

    from gbdist.compute.soap import atoms_soap

    atoms = bulk("Ni", "fcc", a=3.52, cubic=True).repeat((3, 3, 3))
    atoms.rattle(0.1, seed=2)  # every environment its own
    centres = np.array([40, 3, 77, 12, 99, 0])  # as a store orders them: by atom id, not by index
    rows = atoms_soap(atoms, centres, SoapParams(backend=backend, n_max=4, l_max=3), ["Ni"])
    one_by_one = np.vstack([atoms_soap(atoms, np.array([c]), SoapParams(backend=backend, n_max=4, l_max=3), ["Ni"])
                            for c in centres])
    np.testing.assert_allclose(rows, one_by_one, rtol=1e-5, atol=1e-7)
    assert np.abs(rows[0] - rows[1]).max() > 1e-3  # distinct environments, so the order is tested


def test_featomic_rows_of_two_species_keep_every_inner_product():
    pytest.importorskip("featomic", reason="featomic is an optional extra (pip install -e '.[featomic]')")
    from ase.build import bulk

    from gbdist.compute.soap import atoms_soap, n_features

    atoms = bulk("Ni", "fcc", a=3.52, cubic=True).repeat((3, 3, 3))
    atoms.rattle(0.05, seed=1)
    numbers = atoms.numbers.copy()
    numbers[::3] = 29  # a Cu–Ni alloy: three neighbour pairs, two of them of one species
    atoms.numbers = numbers
    centres = np.arange(0, len(atoms), 5)
    params = SoapParams(backend="featomic", n_max=4, l_max=3)
    rows = atoms_soap(atoms, centres, params, ["Cu", "Ni"])
    assert rows.shape == (len(centres), n_features(params, ["Cu", "Ni"])) == (len(centres), (2 * 10 + 16) * 4)
    full = featomic_full_block(atoms, centres, n_max=4, l_max=3)
    full_rows = full.values[np.argsort(full.samples.column("atom"))]
    gram = full_rows @ full_rows.T  # packing keeps every inner product, so the SOAP kernel too
    np.testing.assert_allclose(rows.astype(np.float64) @ rows.T, gram, rtol=1e-5, atol=1e-6 * np.abs(gram).max())
    ni_ni = (full.properties.column("neighbor_1_type") == 28) & (full.properties.column("neighbor_2_type") == 28)
    n_1, n_2 = full.properties.column("n_1")[ni_ni], full.properties.column("n_2")[ni_ni]
    upper = n_1 <= n_2  # the first pair (atomic numbers ascending) comes first, packed
    packed = full_rows[:, ni_ni][:, upper] * np.where(n_1 < n_2, np.sqrt(2), 1.0)[upper]
    np.testing.assert_allclose(rows[:, :upper.sum()], packed, rtol=1e-5, atol=1e-6 * np.abs(packed).max())


def test_asking_for_featomic_without_it_installed_is_a_clear_error(monkeypatch):
    import builtins

    from gbdist.compute.soap import backend_version
    from gbdist.errors import GbdistError

    real_import = builtins.__import__

    def no_featomic(name, *args, **kw):
        if name == "featomic":
            raise ImportError("No module named 'featomic'")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_featomic)
    with pytest.raises(GbdistError, match=r"featomic is not installed; pip install 'gbdist\[featomic\]'"):
        backend_version(SoapParams(backend="featomic"))


def test_rerun_computes_nothing_and_changes_nothing(tmp_path, toy_dumps, scheduler_address):
    store = tmp_path / "toy.zarr"
    job = make_job(store, toy_dumps, scheduler_address, chunk_rows=64)
    run_job(job)
    before = array_digests(store)
    again = run_job(job)
    assert again.soap.chunks_computed == 0 and again.skipped == ["soap", "asr", "lae"]
    assert array_digests(store) == before


def test_store_refuses_other_inputs_or_parameters(tmp_path, toy_dumps, scheduler_address):
    store = tmp_path / "toy.zarr"
    run_job(make_job(store, toy_dumps[:2], scheduler_address, chunk_rows=64))
    with pytest.raises(StoreError, match="other input files"):
        run_job(make_job(store, toy_dumps[:3], scheduler_address, chunk_rows=64))
    with pytest.raises(StoreError, match="other read/select/SOAP parameters"):
        run_job(make_job(store, toy_dumps[:2], scheduler_address, chunk_rows=64, soap={"n_max": 4}))


def test_store_of_another_schema_version_is_refused(tmp_path, toy_dumps, scheduler_address):
    store = tmp_path / "old.zarr"
    zarr.open_group(str(store), mode="w").attrs["schema_version"] = 0
    with pytest.raises(StoreError, match="schema version 0"):
        run_job(make_job(store, toy_dumps, scheduler_address))


def test_bad_files_are_reported_and_the_others_finish(tmp_path, toy_dumps, scheduler_address):
    empty = tmp_path / "empty.dump"
    empty.write_bytes(b"")
    garbage = tmp_path / "noise.dump"
    garbage.write_bytes(b"ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n5\n")
    report = run_job(make_job(tmp_path / "s.zarr", [*toy_dumps, empty, garbage], scheduler_address))
    errors = sorted(f["error"] for f in report.failures)
    assert len(errors) == 2
    assert errors[0].startswith("empty.dump: empty file")
    assert errors[1].startswith("noise.dump: truncated dump")
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    assert g["gb/id"].shape == (len(toy_dumps),) and g["asr"].shape[0] == len(toy_dumps)


def _direct_unit_soap(path):
    """Independent path: ASE's reader, the rule in numpy, dscribe on the whole structure."""
    atoms = ase.io.read(lzma.open(path, "rt"), format="lammps-dump-text")
    typ, cna = atoms.arrays["type"], atoms.arrays["c_cna"]
    atoms.set_chemical_symbols(["Ni"] * len(atoms))
    x = atoms.positions[:, 0]
    core = (cna != 1) & (typ != 4) & (typ != 5)
    centres = np.flatnonzero((x >= x[core].min() - 5) & (x <= x[core].max() + 5))
    soap = SOAP(species=["Ni"], r_cut=5.0, n_max=12, l_max=12, sigma=0.5, periodic=True, dtype="float32")
    rows = soap.create(atoms, centers=centres.tolist()).astype(np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.olmsted
def test_olmsted_p1_to_p12(tmp_path, scheduler_address):
    paths = [olmsted_dump(n) for n in range(1, 13)]
    store = tmp_path / "olmsted12.zarr"
    report = run_job(make_job(store, paths, scheduler_address, read=OLMSTED_READ, select=OLMSTED_SELECT))
    assert not report.failures
    g = zarr.open_group(str(store), mode="r")
    offsets = g["gb/offset"][:]
    assert offsets[1] - offsets[0] == 1188, "GB 1 has exactly 1188 LAEs"
    assert g["soap"].shape[1] == 1014
    assert list(g["gb/id"][:]) == [f"ni.p{n}" for n in range(1, 13)]
    for i, path in enumerate(paths):
        direct = _direct_unit_soap(path)
        assert len(direct) == offsets[i + 1] - offsets[i]
        np.testing.assert_allclose(g["asr"][i], direct.mean(0), rtol=1e-5, atol=1e-6)
    lae = g["lae_eps_0.0320"]
    np.testing.assert_allclose(lae["ler"][:].sum(axis=1), 1.0, atol=1e-6)
    assert lae["label"][:].min() >= 0 and lae["unique/count"][:].sum() == offsets[-1]
    for u, (gb, atom, row) in enumerate(zip(lae["unique/gb"][:], lae["unique/atom"][:], lae["unique/source"][:])):
        structure = read_structure(paths[gb], ReadParams(**OLMSTED_READ))
        assert atom in structure.ids, f"unique LAE {u}: atom {atom} is not in {paths[gb].name}"
        assert offsets[gb] <= row < offsets[gb + 1]
        if u > 0:  # leaders other than the fcc seed are the very row they came from
            np.testing.assert_array_equal(lae["unique/soap"][u], g["soap"][row])
    ds = xr.open_zarr(str(store), consolidated=False)
    assert ds["soap"].dims == ("lae", "feature") and ds.sizes["gb"] == 12
    gb = xr.open_zarr(str(store), group="gb", consolidated=False)
    assert int(gb["offset"][-1]) == ds.sizes["lae"]
