"""The site-energy stage: every atom's excess energy under an EAM potential or EMT, computed on the workers
from the structures in the store (one task per structure), written as a per-atom column.

The excess is E_i − E_bulk, E_bulk the per-atom energy of the structure's own bulk (its lattice at
its lattice constant, ``gb/lattice`` and ``gb/lattice_constant``, of its host element) under the
same potential. A boundary's energy is then the sum of the excess over the atoms within ``window``
Å of its plane, over its area (``boundary_energies``): the window rule.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from gbdist.compute.boundary_energy import window_energy
from gbdist.compute.crystal import perfect_crystal
from gbdist.compute.site_energy import EMT, read_potential, site_energies
from gbdist.errors import GbdistError
from gbdist.stages.progress import as_completed_with_progress
from gbdist.store.schema import (
    GB_HOST,
    GB_ID,
    GB_LATTICE,
    GB_LATTICE_CONSTANT,
    GB_NORMAL,
    StoreArrays,
    open_group,
)
from gbdist.store.structures import (
    add_column,
    boundary_areas,
    column_path,
    layout_of,
    read_structure,
    require_structures,
    write_rows,
)

log = logging.getLogger(__name__)

@lru_cache(maxsize=4)
def _potential(spec: str):
    return read_potential(spec)


def bulk_energy(potential, host: str, lattice: str, a: float) -> float:
    """eV per atom of the perfect ``lattice`` crystal of ``host`` at lattice constant ``a`` Å."""
    return float(site_energies(perfect_crystal(host, lattice, a), potential).mean())


def site_energy_task(store: str, storage_options: dict | None, gb: int, potential: str, column: str) -> dict:
    """Worker task: structure ``gb``'s excess site energies (eV) into column ``column``; errors as data."""
    arrays = StoreArrays(store, "r+", storage_options)
    layout = layout_of(arrays, gb)
    name = str(arrays[GB_ID][gb])
    try:
        calculator = _potential(potential)
        structure = read_structure(arrays, layout, name)
        energies = site_energies(structure.to_ase(), calculator)
        bulk = bulk_energy(calculator, str(arrays[GB_HOST][gb]), str(arrays[GB_LATTICE][gb]),
                           float(arrays[GB_LATTICE_CONSTANT][gb]))
    except GbdistError as err:
        return {"gb": gb, "id": name, "error": f"{name}: {err}"}
    except Exception as err:  # noqa: BLE001  (a calculator's own error, of any kind: this structure fails alone)
        return {"gb": gb, "id": name, "error": f"{name}: {type(err).__name__}: {err}"}
    write_rows(arrays, layout.atom_start, {column_path(column): energies - bulk})
    return {"gb": gb, "id": name, "bulk_ev": bulk, "atoms": len(energies)}


@dataclass
class SiteEnergyReport:
    """What the stage did: the column, the bulk energy per structure (eV/atom), failures, wall s."""

    column: str
    bulk_ev: dict[str, float] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    atoms: int = 0
    wall_s: float = 0.0


def run_site_energy_stage(client, store: str, potential: str | Path, column: str = "excess_energy",
                          storage_options: dict | None = None) -> SiteEnergyReport:
    """Compute every structure's excess site energies under ``potential`` (an EAM file, or ``emt``) into the per-atom
    column ``column`` (eV), one task per structure; a structure that fails (an element the potential
    lacks) is reported and left NaN, the others finish. Recorded in the ``site_energies`` attribute."""
    t0 = time.perf_counter()
    potential = EMT if str(potential).lower() == EMT else str(Path(potential).resolve())
    read_potential(potential)  # a bad file fails here, by name, before any task
    group = open_group(store, mode="a", storage_options=storage_options)
    require_structures(group, store)
    add_column(group, column)
    n_gb = group[GB_ID].shape[0]
    futures = client.map(site_energy_task, [store] * n_gb, [storage_options] * n_gb, range(n_gb),
                         potential=potential, column=column, pure=False)
    report = SiteEnergyReport(column)
    for f in as_completed_with_progress(futures, "site energies"):
        r = f.result()
        if "error" in r:
            report.failures.append({"id": r["id"], "error": r["error"]})
            log.warning("site energies: %s", r["error"])
        else:
            report.bulk_ev[r["id"]] = r["bulk_ev"]
            report.atoms += r["atoms"]
    report.wall_s = time.perf_counter() - t0
    records = dict(group.attrs.get("site_energies", {}))
    records[column] = {"potential": Path(potential).name, "unit": "eV", "reference": "own bulk",
                       "bulk_ev": report.bulk_ev, "failures": report.failures, "wall_s": report.wall_s}
    group.attrs["site_energies"] = records
    return report


def boundary_energies(group, column: str, window: float) -> pd.DataFrame:
    """Per boundary: its energy (J/m²) as the sum of the excess site energies ``column`` of the atoms
    within ``window`` Å of its plane (``boundary_plane``) over its area (the cell face spanned by the
    other two cell vectors), the atoms summed, the area (Å²) and the plane (Å). NaN where the
    structure has no flat boundary normal to an open axis (the distance rule) or no site energies."""
    ids, normals, areas = group[GB_ID][:], group[GB_NORMAL][:], boundary_areas(group)
    rows = []
    for gb in range(len(ids)):
        energy, atoms, plane = np.nan, 0, np.nan
        if np.isfinite(areas[gb]):  # a flat boundary normal to a cell vector
            structure = read_structure(group, layout_of(group, gb), str(ids[gb]), [column])
            energy, atoms, plane = window_energy(structure.positions[:, normals[gb]], structure.extras[column],
                                                 areas[gb], window)
        rows.append({"id": str(ids[gb]), "energy": energy, "atoms": atoms, "area": areas[gb], "plane": plane})
    return pd.DataFrame(rows).set_index("id")
