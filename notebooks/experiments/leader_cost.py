"""Check: what the unique-LAE searches cost per row of a store, with the rows in memory and one thread.

    .venv/bin/python notebooks/experiments/leader_cost.py --store out/bench-10x/scale-10x.zarr [--chunks 30]

Reads ``chunks`` ``soap`` chunks picked at random (seed 0), takes the unique LAEs of the store's
chosen eps, and times, one thread, no I/O, the best of ``repeats`` runs in CPU µs per row:
- discovery's screening of a chunk (``uncovered_rows``: the hot leaders, then FAISS);
- the assignment (``LeaderSearch.search``) and its first step alone (``hot_pass``).
It also prints how hard the rows are for the assignment: the share of rows the hot leaders do not
settle, and for those, the mean number of leaders in reach of their hot leader, by the reach of
the farthest row of their group in their chunk (one candidate set per group) and by their own
(the fewest an exact search pruned this way compares; ``reach_bins`` keeps it within about twice
that).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import zarr
from threadpoolctl import threadpool_limits

from gbdist.compute.leaders import (
    DISTANCE_MARGIN,
    HOT,
    LeaderSearch,
    most_counted,
    soap_distance,
    uncovered_rows,
)
from gbdist.store.schema import chosen_eps, lae_group_name


def _best_cpu_us(fn, rows: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times) / rows * 1e6


def candidates_in_reach(search: LeaderSearch, chunks: list[np.ndarray]) -> tuple[float, float, float]:
    """(share of rows the hot pass leaves open, mean leaders in reach of an open row by the farthest
    row of its group in its chunk, by its own reach); a group is the open rows of one chunk (one
    ``search`` call, as in the lae stage) with the same best hot leader."""
    n_rows = n_open = by_group = by_own = 0
    for rows in chunks:
        labels, similarity, done = search.hot_pass(rows)
        rest = np.flatnonzero(~done)
        n_rows, n_open = n_rows + len(rows), n_open + len(rest)
        for hot_leader in np.unique(labels[rest]):
            reach = 2.0 * soap_distance(similarity[rest[labels[rest] == hot_leader]]) + DISTANCE_MARGIN
            distance = search.distance[hot_leader]
            by_group += len(reach) * int((distance < reach.max()).sum())
            by_own += int((distance[None, :] < reach[:, None]).sum())
    return n_open / max(n_rows, 1), by_group / max(n_open, 1), by_own / max(n_open, 1)


def leader_cost(store: str, chunks: int = 30, repeats: int = 2) -> dict:
    """Per-row costs (CPU µs) and hardness of ``chunks`` random chunks of ``store`` at its chosen eps."""
    group = zarr.open_group(store, mode="r")
    eps = chosen_eps(group)
    lae = group[lae_group_name(eps)]
    leaders, hot = lae["unique/soap"][:], most_counted(lae["unique/count"][:], HOT)
    soap = group["soap"]
    n_chunks = -(-soap.shape[0] // soap.chunks[0])
    picked = np.random.default_rng(0).choice(n_chunks, min(chunks, n_chunks), replace=False)
    chunks = [soap[k * soap.chunks[0]:(k + 1) * soap.chunks[0]] for k in np.sort(picked)]
    rows = np.concatenate(chunks)
    search = LeaderSearch(leaders, hot)
    with threadpool_limits(1):
        screen = _best_cpu_us(lambda: uncovered_rows(rows, eps, leaders, hot), len(rows), repeats)
        hot_pass = _best_cpu_us(lambda: search.hot_pass(rows), len(rows), repeats)
        assign = _best_cpu_us(lambda: search.search(rows), len(rows), repeats)
    open_share, by_group, by_own = candidates_in_reach(search, chunks)
    return {"eps": eps, "leaders": len(leaders), "rows": len(rows), "screen_us": screen, "hot_pass_us": hot_pass,
            "assign_us": assign, "open_share": open_share, "candidates_group": by_group, "candidates_own": by_own}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--chunks", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    r = leader_cost(args.store, args.chunks, args.repeats)
    print(f"{args.store}: eps {r['eps']}, {r['leaders']} unique LAEs, {r['rows']} rows in memory, one thread: "
          f"screen {r['screen_us']:.2f} µs a row, assign {r['assign_us']:.2f} (hot pass {r['hot_pass_us']:.2f}); "
          f"{r['open_share']:.3f} of rows left open by the hot leaders, with {r['candidates_group']:.1f} leaders "
          f"in reach of their group's farthest row and {r['candidates_own']:.1f} in their own")


if __name__ == "__main__":
    main()
