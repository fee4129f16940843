"""Per-atom models: the window rule and building-block energies by hand, no atom of a test boundary
reaching a fit, and ``gbdist site-model`` end to end on the toy learning store."""

import numpy as np
import pytest
import zarr

from gbdist.compute.boundary_energy import EV_PER_A2, block_energies, boundary_area, window_energy


def test_block_energies_by_hand():
    labels = np.array([0, 0, 2, 2, 2, 1])
    excess = np.array([0.1, 0.3, 1.0, 2.0, np.nan, 0.5])
    count, mean, spread = block_energies(labels, excess, 4)
    assert count.tolist() == [2, 1, 2, 0]  # the NaN row counts for nothing
    np.testing.assert_allclose(mean[:3], [0.2, 0.5, 1.5])
    np.testing.assert_allclose(spread[:3], [0.1, 0.0, 0.5])
    assert np.isnan(mean[3]) and np.isnan(spread[3])


def test_the_window_rule_by_hand():
    x = np.arange(41.0)  # atoms every Å from 0 to 40
    excess = np.where(np.abs(x - 20) <= 2, 0.5, 0.0)  # five excited atoms around 20 Å
    excess[0] = excess[40] = 9.0  # free-surface atoms at the ends: they do not place the plane
    energy, atoms, plane = window_energy(x, excess, area=25.0, window=10.0)
    assert plane == 20.0 and atoms == 21
    np.testing.assert_allclose(energy, 2.5 / 25.0 * EV_PER_A2)
    excess[25] = np.nan  # an atom in the window without a value: no energy
    assert np.isnan(window_energy(x, excess, 25.0, 10.0)[0])
    cell = np.array([[30.0, 0, 0], [0, 4.0, 0], [1.0, 0, 5.0]])
    assert boundary_area(cell, 0) == pytest.approx(np.hypot(20.0, 4.0))  # |b × c|: the face, tilted
    assert boundary_area(cell, 2) == pytest.approx(120.0)


def _toy_column(store: str, name: str = "toy_energy") -> np.ndarray:
    """A per-atom column that depends on the structure type (non-fcc atoms cost 0.1 eV) plus noise."""
    from gbdist.store.structures import STRUCTURE_TYPE, add_column, column_path

    group = zarr.open_group(store, mode="a")
    add_column(group, name)
    types = group[STRUCTURE_TYPE][:]
    values = np.where(types == 1, 0.0, 0.1) + np.random.default_rng(0).normal(0, 0.005, len(types))
    group[column_path(name)][:] = values
    return values


def test_no_atom_of_a_test_boundary_reaches_a_fit(store_copy, scheduler_address, monkeypatch):
    from distributed import Client

    import gbdist.learning.sites as sites
    from gbdist.learning.models import random_halves
    from gbdist.store.schema import open_group

    store, _ = store_copy
    _toy_column(store)
    group = open_group(store)
    rows = sites.read_site_rows(group, store, "toy_energy")
    train, test = random_halves(24, 1, 0)[0]
    seen = []
    real_fit = sites.fit_site_model

    def recording_fit(client, soap, y, fit_rows, valid_rows, params, seed=0, repeat=1):
        seen.append((fit_rows.copy(), valid_rows.copy(), y.copy()))
        return real_fit(client, soap, y, fit_rows, valid_rows, params, seed, repeat)

    monkeypatch.setattr(sites, "fit_site_model", recording_fit)
    params = sites.SiteModelParams(max_rounds=5)
    with Client(scheduler_address) as client:
        X = sites.SoapRows(store)
        first = sites.evaluate_site_split(client, X, rows, train, test, params, window=4.0, seed=0)
        fit_rows, valid_rows, _ = seen[0]
        test_rows = rows.rows_of(test)
        assert fit_rows.any() and valid_rows.any() and not (fit_rows & valid_rows).any()
        assert not ((fit_rows | valid_rows) & test_rows).any()
        assert ((fit_rows | valid_rows) <= rows.rows_of(train)).all()
        assert len(first["predicted"]) == test_rows.sum() and np.isfinite(first["predicted"]).all()
        # the test boundaries' own values replaced by nonsense: the additive model (fitted on the
        # training rows) gives the same test energies, and the fit sees the same training values
        rows.value[test_rows] = 1e3
        second = sites.evaluate_site_split(client, X, rows, train, test, params, window=4.0, seed=0)
    np.testing.assert_array_equal(first["additive"], second["additive"])
    np.testing.assert_array_equal(seen[0][2][~test_rows], seen[1][2][~test_rows])
    assert second["mae_mev"] > 1e5  # scored against the (nonsense) test values, as it should be


def test_site_model_end_to_end(store_copy, scheduler_address, tmp_path):
    from gbdist.errors import GbdistError
    from gbdist.learning.sites import SiteModelParams
    from gbdist.stages.client import ClusterConfig
    from gbdist.store.schema import read_block_energies
    from gbdist.workflows.sites import SiteModelOptions, site_model

    store, labels = store_copy
    values = _toy_column(store)
    cluster = ClusterConfig(scheduler=scheduler_address)
    options = SiteModelOptions(column="toy_energy", labels=str(labels), splits=2, window=4.0, top=1,
                               model=SiteModelParams(max_rounds=10))
    result = site_model(store, tmp_path / "out", options, cluster)
    assert len(result.splits) == 2 and np.isfinite(result.splits[["mae_mev", "r2", "ASR_area"]].to_numpy()).all()
    assert result.summary["site_minus_ASR_area"]["se"] >= 0
    group = zarr.open_group(store, mode="r")
    eps = result.summary["eps"]
    stored = read_block_energies(group, eps, "toy_energy")
    label = group[f"lae_eps_{eps:.4f}/label"][:]
    k = int(np.bincount(label).argmax())  # the commonest unique LAE: its mean by hand
    site = group["lae/site"][:]
    np.testing.assert_allclose(stored["mean"][k], values[site][label == k].mean())
    assert stored["count"].sum() == len(label)
    import gbdist

    np.testing.assert_array_equal(gbdist.open_store(store).unique_toy_energy_mean.values, stored["mean"])
    for name in ("report.md", "site_model.json", "splits.csv", "boundaries.csv", "building_blocks.csv",
                 "parity_atoms.png", "parity_boundaries.png"):
        assert (tmp_path / "out" / name).exists(), name
    report = (tmp_path / "out" / "report.md").read_text()
    assert "per-atom MAE" in report and "ASR_area" in report and "blocks/lae" in report
    # explain's report now gives each top LAE's building-block energy
    from gbdist.explain.report import explain
    from gbdist.learning.labels import align_labels, load_labels

    (prop,) = align_labels(load_labels(str(labels)), group["gb/id"][:], ["energy"])
    entries, _ = explain(store, prop, tmp_path / "explain", top=2)
    for e in entries:
        np.testing.assert_allclose(e["block_energy"]["toy_energy"]["mean_ev"], stored["mean"][e["lae"]])
    assert "mean toy_energy (meV)" in (tmp_path / "explain" / "report.md").read_text()
    with pytest.raises(GbdistError, match="--column nothing: no such per-atom column"):
        site_model(store, tmp_path / "out2", SiteModelOptions(column="nothing", labels=str(labels)), cluster)


def test_shares_deal_every_row_once():
    from gbdist.learning.extmem import shares

    rows = np.zeros(10_000, bool)
    rows[[5, 4100, 4101, 9999]] = True  # chunks 0, 1 and 2 of 4096 rows; none is empty
    values = np.arange(10_000, dtype=float)
    parts = shares(rows, values, 4096, n_workers=2)
    assert len(parts) == 2 and [p.chunks for p in parts] == [[(0, 4096), (8192, 10_000)], [(4096, 8192)]]
    dealt = np.concatenate([v for p in parts for v in p.values])
    assert sorted(dealt.tolist()) == [5, 4100, 4101, 9999]
    assert len(shares(rows, values, 4096, n_workers=8)) == 3  # no worker without rows


def test_external_memory_training_learns_like_the_in_memory_one(store_copy, scheduler_address):
    from distributed import Client

    import gbdist.learning.sites as sites
    from gbdist.learning.models import random_halves
    from gbdist.store.schema import open_group

    store, _ = store_copy
    _toy_column(store)
    rows = sites.read_site_rows(open_group(store), store, "toy_energy")
    train, test = random_halves(24, 1, 0)[0]
    scores = {}
    with Client(scheduler_address) as client:
        for memory in ("workers", "external"):
            params = sites.SiteModelParams(max_rounds=30, memory=memory)
            scores[memory] = sites.evaluate_site_split(client, sites.SoapRows(store), rows, train, test, params,
                                                       window=4.0, seed=0)

        def pages(dask_worker):
            import glob
            import os

            return glob.glob(os.path.join(dask_worker.local_directory, "xgb-extmem-*"))

        assert not any(client.run(pages).values()), "the external-memory pages are removed after the fit"
    for memory, r in scores.items():  # the toy column is 0.1 eV on non-fcc atoms, 5 meV noise
        assert np.isfinite(r["predicted"]).all() and r["mae_mev"] < 25, (memory, r["mae_mev"])
    assert abs(scores["external"]["mae_mev"] - scores["workers"]["mae_mev"]) < 10


def test_a_repeated_share_streams_its_rows_that_many_times(store_copy, tmp_path):
    from gbdist.learning.extmem import ChunkRows, shares
    from gbdist.store.schema import SOAP, open_group

    store, _ = store_copy
    soap = open_group(store)[SOAP]
    n = soap.shape[0]
    rows = np.arange(n) % 3 == 0
    (share,) = shares(rows, np.arange(n, dtype=float), soap.chunks[0], n_workers=1)
    share.repeat = 3
    stream = ChunkRows(store, None, share, str(tmp_path / "cache"))
    batches = []
    for _ in range(2):  # XGBoost resets the iterator between its passes; each pass deals everything again
        stream.reset()
        while stream.next(lambda data, label: batches.append((data, label))):
            pass
    data = np.concatenate([d for d, _ in batches])
    labels = np.concatenate([y for _, y in batches])
    assert len(data) == 2 * 3 * rows.sum()
    np.testing.assert_array_equal(data[: rows.sum()], soap[:][rows])
    np.testing.assert_array_equal(np.sort(labels), np.sort(np.tile(np.flatnonzero(rows), 6)).astype(np.float32))
