"""Experiment: the ASR from featomic's SOAP (the code closest to the paper's QUIP SOAP).

    pip install -e ".[experiments]"      # featomic, not a gbdist dependency
    .venv/bin/python notebooks/experiments/featomic_asr.py --store out/olmsted.zarr --n-max 18 --l-max 18

Recomputes, for every GB of a finished store, the SOAP power spectrum of the same centres with
featomic (r_cut 5 Å with a 0.5 Å shifted-cosine smoothing, Gaussian width 0.5 Å, GTO radial
basis; the open normal is made periodic with 6 Å of vacuum on each side, and the structure
is cropped to the centres' extent ± 5.6 Å, which leaves each environment whole). The rows are
unit-normalised and averaged per GB, one Dask task per GB. The result is saved to ``--out``
(default ``out/featomic-ASR-<n>-<l>.npy``). Then ``gbdist evaluate``'s protocol (``--splits``
random halves, seed 0) scores it, and its ×thickness variant, beside the store's ASR.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def featomic_asr_of_gb(source: str, atom_ids: np.ndarray, normal: int, n_max: int, l_max: int,
                       read: dict) -> np.ndarray:
    """Mean unit featomic SOAP vector of the given atoms (ids) of one structure (read as the store's
    ``read`` parameters say); (n_feat,)."""
    import metatensor
    from featomic import SoapPowerSpectrum

    from gbdist.compute.soap import crop_to_centres
    from gbdist.io.read import ReadParams, read_structure

    structure = read_structure(source, ReadParams(**read))
    order = np.argsort(structure.ids)
    centres = order[np.searchsorted(structure.ids, atom_ids, sorter=order)]
    keep, local = crop_to_centres(structure, centres, normal, 5.6)
    atoms = structure.to_ase(keep)
    cell, pos = atoms.cell.array.copy(), atoms.positions.copy()
    pos[:, normal] -= pos[:, normal].min() - 6.0
    cell[normal] = 0.0
    cell[normal, normal] = pos[:, normal].max() + 6.0
    atoms.set_cell(cell)
    atoms.positions = pos
    atoms.pbc = True
    calculator = SoapPowerSpectrum(
        cutoff={"radius": 5.0, "smoothing": {"type": "ShiftedCosine", "width": 0.5}},
        density={"type": "Gaussian", "width": 0.5},
        basis={"type": "TensorProduct", "max_angular": l_max, "radial": {"type": "Gto", "max_radial": n_max - 1}})
    samples = metatensor.Labels(["atom"], np.asarray(local, dtype=np.int32).reshape(-1, 1))
    tensor = calculator.compute(atoms, selected_samples=samples)
    block = tensor.keys_to_samples("center_type").keys_to_properties(["neighbor_1_type", "neighbor_2_type"]).block()
    rows = np.asarray(block.values, dtype=np.float64)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.mean(axis=0).astype(np.float32)


def main() -> None:
    from dask.distributed import Client, LocalCluster
    from table1_protocol import experiment_parser, score_and_print

    from gbdist.stages.progress import as_completed_with_progress
    from gbdist.store.representations import read_representations, region_thickness
    from gbdist.store.schema import open_group

    parser = experiment_parser(__doc__)
    parser.add_argument("--n-max", type=int, default=12)
    parser.add_argument("--l-max", type=int, default=12)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path("out") / f"featomic-ASR-{args.n_max}-{args.l_max}.npy"
    group = open_group(args.store, mode="r")
    offset, atoms = group["gb/offset"][:], group["lae/atom"][:]
    sources, normals = group["gb/source"][:], group["gb/normal"][:]
    with Client(LocalCluster(n_workers=args.workers, threads_per_worker=1)) as client:
        if not out.exists():
            t0 = time.perf_counter()
            futures = [client.submit(featomic_asr_of_gb, str(sources[i]), atoms[offset[i]:offset[i + 1]],
                                     int(normals[i]), args.n_max, args.l_max, group.attrs["params"]["read"],
                                     pure=False) for i in range(len(sources))]
            list(as_completed_with_progress(futures, "featomic ASR"))
            out.parent.mkdir(parents=True, exist_ok=True)
            np.save(out, np.stack(client.gather(futures)))
            print(f"featomic ASR ({args.n_max}/{args.l_max}) of {len(sources)} GBs in {time.perf_counter() - t0:.0f} s → {out}")
        X = np.load(out)
    thickness = region_thickness(group)[:, None]
    reps = {"ASR": read_representations(group)["ASR"][0], "featomic": X, "featomic_area": X * thickness}
    score_and_print(args.store, reps, args.labels, args.splits, args.workers)


if __name__ == "__main__":
    main()
