"""The LAE map as a chemiscope dataset (chemiscope's own Python API): a sample of the environments,
each shown inside the atoms around it, with the map coordinates and the unique LAEs as properties.

Structures are one per boundary: the atoms within ``r_cut`` + ``MARGIN`` of its sampled centres
(periodic images included), with the boundary's cell and periodicity, so a periodic cell is drawn
right and no atom is written twice for two environments of one boundary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gbdist.compute.crystal import NAMES, atoms_within
from gbdist.errors import GbdistError
from gbdist.store.schema import open_group
from gbdist.store.structures import gb_structure

SAMPLE = 50_000
"""Environments at most in a dataset (chemiscope thins larger maps)."""

MARGIN = 1.0
"""Å beyond r_cut kept around each sampled centre."""


def _chemiscope():
    try:
        import chemiscope
    except ImportError:
        raise GbdistError("--chemiscope: chemiscope is not installed; pip install 'gbdist[chemiscope]'") from None
    return chemiscope


def environment_sample(labels: np.ndarray, sources: np.ndarray, size: int = SAMPLE, seed: int = 0) -> np.ndarray:
    """Rows (ascending, int64) to show: every unique LAE's own source row, then from each unique LAE a
    random share of its rows proportional to its population (rounded down), so the map's density is
    kept; at most ``size`` rows, or the unique LAEs' sources alone where they are more.

    labels : (n_lae,) unique-LAE id of each row; sources : (n_u,) the source row of each unique LAE.
    """
    rng = np.random.default_rng(seed)
    chosen = set(int(r) for r in sources)
    room = max(size - len(chosen), 0)
    share = min(1.0, room / max(len(labels), 1))
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(labels.max() + 2)) if len(labels) else [0]
    for k in range(len(bounds) - 1):
        members = order[bounds[k]:bounds[k + 1]]
        take = int(np.floor(share * len(members)))
        chosen.update(int(r) for r in rng.choice(members, size=take, replace=False))
    return np.array(sorted(chosen), np.int64)


def boundary_region(store: str, gb: int, atom_ids: np.ndarray, reach: float, storage_options: dict | None = None):
    """Worker task: the atoms of boundary ``gb`` (its position in the store) within ``reach`` Å of the atoms
    ``atom_ids`` (periodic images included), as an ase ``Atoms`` with its cell and periodicity, and the
    index of each of those atoms in it: (Atoms, (len(atom_ids),) int64)."""
    structure = gb_structure(open_group(store, storage_options=storage_options), gb, columns=[])
    where = {int(a): i for i, a in enumerate(structure.ids)}
    centres = np.array([where[int(a)] for a in atom_ids], np.int64)
    keep = atoms_within(structure, centres, reach)
    atoms = structure.to_ase(keep)
    return atoms, np.searchsorted(keep, centres)


def finite_properties(candidates: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    """The numeric ``candidates`` (name → values per environment) with a value for every environment,
    and the names of those left out (a NaN is not valid JSON, and chemiscope takes no gap)."""
    kept, left = {}, []
    for name, values in candidates.items():
        values = np.asarray(values)
        if values.dtype.kind in "fc" and not np.isfinite(values).all():
            left.append(name)
        else:
            kept[name] = values.astype(np.float64) if values.dtype.kind in "iuf" else [str(v) for v in values]
    return kept, left


def label_properties(properties: list, gb_of_row: np.ndarray, n_gb: int) -> dict[str, np.ndarray]:
    """Per-boundary labels (``gbdist.learning.labels.Property``, aligned to the store) as values per
    environment: the label of each row's boundary (a class label as its class value); NaN for a
    boundary without one."""
    out = {}
    for prop in properties:
        per_gb = np.full(n_gb, np.nan)
        per_gb[prop.rows] = np.asarray(prop.classes, np.float64)[prop.y] if prop.classes else prop.y
        out[prop.name] = per_gb[gb_of_row]
    return out


def write_chemiscope(path, regions: list, properties: dict, r_cut: float, name: str, description: str,
                     colour: str = "unique LAE") -> None:
    """Write the chemiscope input to ``path`` (gzip-compressed where it ends with .gz) with chemiscope's
    ``write_input``: one structure per boundary region, one environment per sampled row.

    regions : (Atoms, local centre indices) per boundary with sampled rows, in row order;
    properties : {name: (n_env,) values} in the order of the concatenated centres.
    """
    chemiscope = _chemiscope()
    structures, environments = [], []
    for s, (atoms, local) in enumerate(regions):
        structures.append(atoms)
        environments.extend((s, int(i), r_cut) for i in local)
    props = {key: {"target": "atom", "values": values} for key, values in properties.items()}
    settings = chemiscope.quick_settings(x="PC1", y="PC2", map_color=colour, target="atom")
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        chemiscope.write_input(str(path), structures=structures, environments=environments, properties=props,
                               settings=settings, metadata={"name": name, "description": description})
    except OSError as err:
        raise GbdistError(f"--chemiscope {path}: cannot write it ({err.strerror or err})") from None


def type_names(types: np.ndarray) -> list[str]:
    """Structure-type codes → names ('fcc', 'bcc', …, 'other')."""
    return [NAMES.get(int(t), "other") for t in types]
