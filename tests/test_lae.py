"""Unique LAEs: the greedy leader rule, FAISS assignment, the distributed merge, the LER."""

import numpy as np
import pytest
import zarr

from gbdist.compute.leaders import (
    LeaderSearch,
    assign_to_leaders,
    gb_label_counts,
    greedy_leaders,
    knee,
    ler_matrix,
    reach_bins,
    similarity_threshold,
)
from gbdist.stages.lae import run_lae_stage
from gbdist.store.schema import lae_group_name, write_array
from gbdist.workflows.job import run_job

from conftest import make_job


def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _clusters(n_clusters=6, per=40, d=64, spread=0.005, seed=0):
    """Rows around n well-separated unit centres, shuffled; returns (rows, cluster of each row, centres)."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(n_clusters, d)))
    member = rng.permutation(np.repeat(np.arange(n_clusters), per))
    rows = _unit(centres[member] + rng.normal(scale=spread, size=(len(member), d)))
    return rows, member, centres


def test_distance_threshold():
    a, b = _unit(np.array([[1.0, 0.0], [1.0, 0.1]]))
    d = np.sqrt(2 - 2 * a @ b)
    assert (a @ b >= similarity_threshold(d + 1e-4)) and (a @ b < similarity_threshold(d - 1e-4))


def test_known_clusters_are_recovered():
    rows, member, centres = _clusters()
    eps = 0.1
    seed = centres[:1]  # cluster 0 is the seed ('perfect fcc')
    leaders = greedy_leaders(rows, eps, seed)
    assert len(leaders) == len(centres) - 1
    firsts = sorted(int(np.flatnonzero(member == c)[0]) for c in range(1, len(centres)))
    assert leaders.tolist() == firsts, "each cluster's first row leads it"
    labels, _ = assign_to_leaders(rows, np.vstack([seed, rows[leaders]]))
    leader_cluster = np.concatenate([[0], member[leaders]])
    np.testing.assert_array_equal(leader_cluster[labels], member)


@pytest.mark.parametrize("batch", [7, 64, 10_000])
def test_no_row_within_eps_of_a_leader_becomes_a_leader(batch):
    rng = np.random.default_rng(1)
    rows = _unit(rng.normal(size=(500, 8)) + 3.0)  # a continuum, not clusters
    eps = 0.15
    seed = rows[:1] * 0 + _unit(np.ones((1, 8)))
    leaders = greedy_leaders(rows, eps, seed, batch=batch)
    thr = similarity_threshold(eps)
    vecs = np.vstack([seed, rows[leaders]])
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, -1)
    assert sims.max() < thr, "leaders are pairwise farther than eps"
    _, best = assign_to_leaders(rows, vecs)
    assert best.min() >= thr - 1e-6, "every row lies within eps of a leader"
    for j, r in enumerate(leaders):  # and the greedy order: no leader within eps of an earlier one
        assert (vecs[: j + 1] @ rows[r]).max() < thr
    assert leaders.tolist() == greedy_leaders(rows, eps, seed, batch=3).tolist(), "batching does not matter"


@pytest.mark.parametrize("hot", [[], [0], [3, 0, 7], list(range(12)), list(range(30))])
@pytest.mark.parametrize("layout", ["separated", "overlapping"])
def test_shortcut_search_is_exact(hot, layout):
    """Rows the hot-leader shortcut settles get the same leader as a search over all leaders."""
    rng = np.random.default_rng(0)
    rows, _, centres = _clusters(n_clusters=8, per=50, d=32, spread=0.02 if layout == "separated" else 0.08, seed=5)
    others = _unit(rng.normal(size=(22, 32))) if layout == "separated" else rows[rng.choice(len(rows), 22, replace=False)]
    leaders = np.vstack([centres, others])
    search = LeaderSearch(leaders, np.array(hot, dtype=np.int64))
    labels, sims = search.search(rows)
    full = rows.astype(np.float64) @ leaders.T.astype(np.float64)
    np.testing.assert_array_equal(labels, full.argmax(axis=1))
    np.testing.assert_allclose(sims, full.max(axis=1), atol=1e-5)
    if layout == "separated" and hot:
        assert search.hot_pass(rows)[2].sum() >= 50, "the shortcut settles (at least) a hot cluster's rows"


@pytest.mark.parametrize("floor", [1, 8])
def test_reach_bins_cover_the_rows_in_order_each_within_twice_its_nearest_row(floor):
    counts = np.sort(np.random.default_rng(2).integers(0, 300, 500))
    bins = reach_bins(counts, floor)
    assert [lo for lo, _ in bins] == [0] + [hi for _, hi in bins[:-1]] and bins[-1][1] == len(counts)
    assert all(counts[hi - 1] <= 2 * max(counts[lo], floor) for lo, hi in bins)
    assert len(bins) > 3 and reach_bins(np.zeros(0, int)) == []


def test_gb_label_counts_are_the_pairs_of_a_2d_unique():
    rng = np.random.default_rng(3)
    gbs, labels = np.sort(rng.integers(40, 44, 1000)), rng.integers(0, 300, 1000)
    pairs, counts = gb_label_counts(gbs, labels)
    expected_pairs, expected_counts = np.unique(np.stack([gbs, labels]), axis=1, return_counts=True)
    np.testing.assert_array_equal(pairs, expected_pairs)
    np.testing.assert_array_equal(counts, expected_counts)
    assert gb_label_counts(gbs[:0], labels[:0])[0].shape == (2, 0)


def test_ler_rows_sum_to_one():
    counts = np.array([[3, 1, 0], [0, 0, 5]])
    ler = ler_matrix(counts)
    np.testing.assert_allclose(ler.sum(1), 1, atol=1e-6)
    np.testing.assert_allclose(ler[0], [0.75, 0.25, 0])


def test_knee_of_a_bent_curve():
    eps = np.linspace(0.01, 0.08, 15)
    counts = np.where(eps < 0.03, 10_000 * np.exp(-200 * (eps - 0.01)), 183 * np.exp(-5 * (eps - 0.03)))
    assert 0.025 <= eps[knee(eps, counts)] <= 0.035


def _clustered_store(path, n_gb=5):
    """A store whose soap rows are constructed clusters (cluster 0 = a stand-in for fcc)."""
    rows, member, centres = _clusters(n_clusters=8, per=60, d=32, seed=3)
    g = zarr.open_group(str(path), mode="w")
    n = len(rows)
    offsets = np.linspace(0, n, n_gb + 1).astype(np.int64)
    g.attrs.update({"schema_version": 1, "species": ["Ni"], "stages": {"soap": {"done": True}}})
    g.create_array("soap", data=rows, chunks=(50, rows.shape[1]), dimension_names=["lae", "feature"])
    g.create_array("progress/soap", data=np.ones(-(-n // 50), np.uint8), chunks=(1,))
    g.create_array("gb/offset", data=offsets, chunks=(n_gb + 1,))
    write_array(g, "gb/id", np.array([f"g{i}" for i in range(n_gb)]), ["gb"])
    g.create_array("lae/gb", data=np.repeat(np.arange(n_gb, dtype=np.int32), np.diff(offsets)), chunks=(50,))
    g.create_array("lae/atom", data=np.arange(n, dtype=np.int64) + 100, chunks=(50,))
    return rows, member, centres


def test_pipelined_discovery_is_the_one_process_greedy_rule_and_reads_each_row_twice(
        tmp_path, scheduler_address, monkeypatch):
    from distributed import Client

    import gbdist.stages.lae as stage

    rows, member, centres = _clustered_store(tmp_path / "c.zarr")
    rng = np.random.default_rng(5)  # a continuum as well, so leaders depend on the row order
    rows[::3, :3] += rng.normal(size=(len(rows[::3]), 3)).astype(np.float32) * 0.3
    rows = _unit(rows)
    zarr.open_group(str(tmp_path / "c.zarr"))["soap"][:] = rows
    monkeypatch.setattr(stage, "_seed", lambda client, group: centres[:1])
    expected = greedy_leaders(rows, 0.2, centres[0][None, :])
    with Client(scheduler_address) as client:
        for ahead, scatter_bytes in ((1, stage.SCATTER_BYTES), (4, stage.SCATTER_BYTES), (4, 0)):
            monkeypatch.setattr(stage, "SCATTER_BYTES", scatter_bytes)  # 0: leaders always scattered
            found, rows_read = stage.discover_leaders(client, str(tmp_path / "c.zarr"), None, [0.2, 0.4], ahead)
            np.testing.assert_array_equal(found[0.2].rows, np.concatenate([[-1], expected]))
            np.testing.assert_array_equal(found[0.4].rows[1:], greedy_leaders(rows, 0.4, centres[0][None, :]))
            assert rows_read == len(rows)
        report = run_lae_stage(client, str(tmp_path / "c.zarr"), eps=0.2)
    assert report.n_unique == len(expected) + 1 and report.n_orphan_leaders == 0
    assert report.soap_passes == 2.0  # discovery and assignment, counted by the tasks
    out = zarr.open_group(str(tmp_path / "c.zarr"))[lae_group_name(0.2)]
    full = rows.astype(np.float64) @ out["unique/soap"][:].T.astype(np.float64)
    np.testing.assert_array_equal(out["label"][:], full.argmax(axis=1))
    np.testing.assert_allclose(out["ler"][:].sum(1), 1, atol=1e-6)
    assert out["unique/count"][:].sum() == len(rows)


def test_well_separated_clusters_get_one_leader_each(tmp_path, scheduler_address, monkeypatch):
    from distributed import Client

    import gbdist.stages.lae as stage

    rows, member, centres = _clustered_store(tmp_path / "c.zarr")
    monkeypatch.setattr(stage, "_seed", lambda client, group: centres[:1])
    with Client(scheduler_address) as client:
        report = run_lae_stage(client, str(tmp_path / "c.zarr"), eps=0.1)
    assert report.n_unique == 8 and report.n_orphan_leaders == 0
    out = zarr.open_group(str(tmp_path / "c.zarr"))[lae_group_name(0.1)]
    leader_cluster = member[out["unique/source"][:]]
    np.testing.assert_array_equal(leader_cluster[out["label"][:]], member)


def test_lae_stage_on_a_toy_store(tmp_path, toy_dumps, scheduler_address):
    store = tmp_path / "toy.zarr"
    report = run_job(make_job(store, toy_dumps, scheduler_address, chunk_rows=64, lae={"eps": 0.05}))
    assert report.lae is not None and report.lae.n_unique >= 2
    g = zarr.open_group(str(store), mode="r")
    out = g[lae_group_name(0.05)]
    labels = out["label"][:]
    assert labels.min() >= 0 and labels.max() == report.lae.n_unique - 1
    assert out["similarity"][:].min() >= similarity_threshold(0.05) - 1e-6, "every row within eps of its leader"
    np.testing.assert_allclose(out["ler"][:].sum(1), 1, atol=1e-6)
    src = out["unique/source"][:]
    np.testing.assert_array_equal(out["unique/atom"][:], g["lae/atom"][:][src])
    np.testing.assert_array_equal(out["unique/gb"][:], g["lae/gb"][:][src])
    again = run_job(make_job(store, toy_dumps, scheduler_address, chunk_rows=64, lae={"eps": 0.05}))
    assert again.lae is None and "lae" in again.skipped


def test_orphan_refinement_gives_every_row_its_most_similar_leader(tmp_path, scheduler_address, monkeypatch):
    """Leaders lost after discovery (as float rounding could lose a row at the threshold) leave
    orphans; after refinement each row's label is the most similar of the final leaders, as a
    search over all of them would give."""
    from distributed import Client

    import gbdist.stages.lae as stage

    path = tmp_path / "c.zarr"
    _clustered_store(path)
    rng = np.random.default_rng(7)
    g = zarr.open_group(str(path), mode="r+")
    dense = np.zeros(g["soap"].shape)  # a 3-d continuum around the seed axis
    dense[:, :3] = rng.normal(size=(len(dense), 3)) * 0.4
    dense[:, 0] += 1.0
    rows = _unit(dense)
    g["soap"][:] = rows
    monkeypatch.setattr(stage, "_seed", lambda client, group: np.eye(rows.shape[1], dtype=np.float32)[:1])
    discover = stage.discover_leaders

    def lose_every_third_leader(*args, **kw):
        found, rows_read = discover(*args, **kw)
        for leaders in found.values():
            keep = np.arange(len(leaders.rows)) % 3 != 2
            leaders.rows, leaders.vectors, leaders.counts = leaders.rows[keep], leaders.vectors[keep], leaders.counts[keep]
        return found, rows_read

    monkeypatch.setattr(stage, "discover_leaders", lose_every_third_leader)
    with Client(scheduler_address) as client:
        report = run_lae_stage(client, str(path), eps=0.3)
    assert report.n_orphan_leaders > 0, "the scenario needs orphans"
    assert report.soap_passes > 2.0  # the orphans' chunks and the refinement read rows again, and are counted
    out = zarr.open_group(str(path))[lae_group_name(0.3)]
    full = rows.astype(np.float64) @ out["unique/soap"][:].T.astype(np.float64)
    np.testing.assert_array_equal(out["label"][:], full.argmax(axis=1))
    assert out["similarity"][:].min() >= similarity_threshold(0.3) - 1e-6
    assert out["unique/count"][:].sum() == len(rows)
