"""dscribe's working memory per SOAP centre, beyond the rows it returns (``DSCRIBE_CENTRE_BYTES``).

Run one structure and batch at a time, in a fresh process (peak RSS is per process):

    .venv/bin/python notebooks/experiments/dscribe_memory.py ../shared/data/olmsted/dumps/ni.p101.out.xz Ni 4096 pos
    .venv/bin/python notebooks/experiments/dscribe_memory.py ../shared/data/olmsted/dumps/ni.p101.out.xz Ni 4096 index

``pos`` hands dscribe the centres' positions (as gbdist does), ``index`` their atom indices.
"""

import argparse
from pathlib import Path

import numpy as np

from gbdist.compute.soap import SoapParams, make_soap, species_symbols
from gbdist.io import ReadParams, read_structure
from gbdist.rss import peak_rss_bytes, release_free_memory, reset_peak_rss


def resident_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("element")
    parser.add_argument("centres", type=int)
    parser.add_argument("given", choices=["pos", "index"])
    args = parser.parse_args()
    structure = read_structure(args.path, ReadParams(element=args.element))
    atoms, species = structure.to_ase(), species_symbols(structure.numbers)
    soap = make_soap(SoapParams(), species, bool(atoms.pbc.any()))
    chosen = np.random.default_rng(0).choice(len(atoms), min(args.centres, len(atoms)), replace=False)
    centres = atoms.positions[chosen] if args.given == "pos" else [int(i) for i in chosen]
    soap.create(atoms, centers=centres[:10])  # the code's own first-call allocations
    release_free_memory()
    base = resident_bytes()
    reset_peak_rss()
    rows = soap.create(atoms, centers=centres)
    growth = peak_rss_bytes() - base - rows.nbytes
    print(f"{Path(args.path).name}: {len(atoms)} atoms, {len(chosen)} centres given as {args.given}: "
          f"{growth / 2**20:.1f} MiB beyond the rows, {growth / len(chosen) / 1024:.1f} kB per centre, "
          f"{growth / len(chosen) / len(atoms):.2f} B per (centre, atom) pair")


if __name__ == "__main__":
    main()
