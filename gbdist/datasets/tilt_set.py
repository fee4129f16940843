"""A generated data set on disk: relaxed tilt boundaries as LAMMPS dumps, labels and an energy plot.

Layout of ``DIR``: ``structures/<name>.dump.gz`` (``id type x y z c_cna c_pe excess_energy``; types
1 and 2 are the grains, 4 and 5 the end layers, as in the Olmsted dumps; ``c_pe`` each atom's EMT
energy and ``excess_energy`` its excess over the bulk, eV), ``labels.csv`` (``id``,
``energy`` in J/m²), ``boundaries.csv`` (axis, plane, θ, Σ, energy, atoms, chosen trial),
``energies.png`` (energy against θ per tilt axis) and ``params.json``. A folder built with
the same parameters is reused as it is.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from gbdist.compute.cna import compute_cna
from gbdist.compute.site_energy import EMT, site_energies
from gbdist.datasets.generate import (
    GenerateParams,
    TiltBoundary,
    bulk_energy_per_atom,
    enumerate_boundaries,
    relax_boundary,
    resolved,
)
from gbdist.io.lammps import write_lammps_dump
from gbdist.stages.progress import as_completed_with_progress
from gbdist.structure import Structure

log = logging.getLogger(__name__)

GENERATED_SELECT = {"type_column": "c_cna", "type_convention": "lammps"}
"""How jobs on a generated set read its structure types: the ``c_cna`` column it writes (asap3's CNA in
LAMMPS cna/atom's codes)."""


def write_boundary(boundary: TiltBoundary, params: GenerateParams, e_bulk: float, folder: str) -> dict:
    """Worker task: relax one boundary, write its dump, return its ``boundaries.csv`` row."""
    relaxed = relax_boundary(boundary, params, e_bulk)
    path = Path(folder) / f"{boundary.name}.dump.gz"
    structure = Structure.from_ase(relaxed.atoms, source=path.name)
    structure.extras["type"] = relaxed.types
    structure.extras["c_cna"] = compute_cna(structure)
    energies = site_energies(relaxed.atoms, EMT)  # EMT, under which it was relaxed
    structure.extras["c_pe"] = energies
    structure.extras["excess_energy"] = energies - e_bulk
    write_lammps_dump(path, structure)
    return {"id": boundary.name, "axis": "[" + "".join(map(str, boundary.axis)) + "]",
            "plane": "(" + " ".join(map(str, boundary.normal)) + ")", "angle_deg": boundary.angle,
            "sigma": boundary.sigma, "energy": relaxed.energy, "atoms": len(relaxed.atoms),
            "shift_y": relaxed.shift[0], "shift_z": relaxed.shift[1], "overlap": relaxed.overlap,
            "trials": relaxed.trials}


def dataset_ready(out: Path, params: GenerateParams) -> bool:
    """True when ``out`` holds a finished set built with ``params``."""
    meta = out / "params.json"
    return meta.exists() and (out / "labels.csv").exists() and json.loads(meta.read_text()) == _recorded(params)


DATASET_FORMAT = 2
"""What a set's dumps hold; 2: per-atom EMT energies (``c_pe``, eV) and their excess over the bulk
(``excess_energy``, eV). A set of an older format is built again."""


def _recorded(params: GenerateParams) -> dict:
    """The parameters that decide the structures (a job's output folder is not one of them), and the format."""
    return GenerateParams.model_validate(params.model_dump(exclude={"out"})).model_dump() | {"format": DATASET_FORMAT}


def generate_dataset(client, params: GenerateParams, out: Path) -> pd.DataFrame:
    """Build, relax and write every boundary of ``params`` on the Dask workers; returns the table.

    A boundary that fails is logged with its reason and left out; the others are written.
    """
    out = Path(out)
    params = resolved(GenerateParams.model_validate(params.model_dump(exclude={"out"})))
    if dataset_ready(out, params):
        log.info("generate: reusing %s", out)
        return pd.read_csv(out / "boundaries.csv")
    folder = out / "structures"
    folder.mkdir(parents=True, exist_ok=True)
    boundaries = enumerate_boundaries(params)
    e_bulk = bulk_energy_per_atom(params)
    futures = client.map(write_boundary, boundaries, params=params, e_bulk=e_bulk, folder=str(folder), pure=False)
    names = {f.key: b.name for f, b in zip(futures, boundaries)}
    rows = []
    for future in as_completed_with_progress(futures, "build + relax boundaries"):
        try:
            rows.append(future.result())
        except Exception as err:  # one bad boundary must not sink the set
            log.error("generate: %s failed: %s", names[future.key], err)
    table = pd.DataFrame(rows).sort_values(["sigma", "axis", "angle_deg"]).reset_index(drop=True)
    table.to_csv(out / "boundaries.csv", index=False)
    table[["id", "energy"]].to_csv(out / "labels.csv", index=False)
    energy_plot(out / "energies.png", table)
    (out / "params.json").write_text(json.dumps(_recorded(params), indent=1))
    return table


def energy_plot(path: Path, table: pd.DataFrame) -> None:
    """GB energy against misorientation, one panel per tilt axis, low-Σ boundaries labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes = sorted(table["axis"].unique())
    fig, panels = plt.subplots(1, len(axes), figsize=(4.5 * len(axes), 3.6), squeeze=False)
    for ax, axis in zip(panels[0], axes):
        mine = table[table["axis"] == axis].sort_values("angle_deg")
        ax.plot(mine["angle_deg"], mine["energy"], "o-", ms=4)
        for _, row in mine[mine["sigma"] <= 11].iterrows():
            ax.annotate(f"Σ{row['sigma']}", (row["angle_deg"], row["energy"]), fontsize=7,
                        textcoords="offset points", xytext=(0, -11), ha="center")
        ax.set(title=f"{axis} symmetric tilt", xlabel="misorientation θ (°)", ylabel="GB energy (J/m²)")
        ax.set_ylim(bottom=min(0.0, float(np.min(mine["energy"]))))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
