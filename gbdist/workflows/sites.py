"""``gbdist site-energy``: per-atom excess energies of a store's structures under an EAM potential,
and each boundary's energy from them, compared with labels when given."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from gbdist.errors import GbdistError
from gbdist.learning.labels import load_labels
from gbdist.stages.client import ClusterConfig, dask_client
from gbdist.stages.sites import SiteEnergyReport, boundary_energies, run_site_energy_stage
from gbdist.store.lock import store_lock
from gbdist.store.schema import open_group

log = logging.getLogger(__name__)


class SiteEnergyOptions(BaseModel):
    """How site energies are computed and summed per boundary."""

    model_config = ConfigDict(extra="forbid")
    potential: str = Field(description="EAM potential file (LAMMPS .eam, .eam.alloy or .eam.fs; .xz/.gz too)")
    column: str = Field("excess_energy", pattern=r"^[A-Za-z0-9_.\-]+$",
                        description="per-atom column the excess energies (eV) are written to")
    window: float = Field(10.0, gt=0, description="Å either side of a boundary's plane whose atoms its energy sums")
    labels: str | None = Field(None, description="labels to compare the boundary energies with (as for evaluate)")
    property: str = Field("energy", description="the labels' column of boundary energies, J/m²")


@dataclass
class SiteEnergyResult:
    report: SiteEnergyReport
    boundaries: pd.DataFrame
    """per boundary: energy (J/m²), atoms summed, area (Å²), and with labels: label, relative error."""
    within_2_percent: int | None = None


def site_energies(store: str, out: str | Path, options: SiteEnergyOptions,
                  cluster: ClusterConfig | None = None) -> SiteEnergyResult:
    """Compute the site energies into ``store`` and write ``boundaries.csv`` and ``site_energy.json``
    to ``out``."""
    labels = load_labels(options.labels) if options.labels else None  # checked before any work
    if labels is not None and options.property not in labels.columns:
        raise GbdistError(f"--property {options.property}: not a column of {options.labels} "
                          f"({', '.join(map(str, labels.columns))})")
    with store_lock(store), dask_client(cluster or ClusterConfig()) as client:
        report = run_site_energy_stage(client, store, options.potential, options.column)
    table = boundary_energies(open_group(store), options.column, options.window)
    within = None
    if labels is not None:
        table["label"] = labels[options.property].reindex(table.index).to_numpy(dtype=float)
        table["relative_error"] = table["energy"] / table["label"] - 1.0
        within = int((table["relative_error"].abs() <= 0.02).sum())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "boundaries.csv")
    (out / "site_energy.json").write_text(json.dumps({
        "store": store, "potential": Path(options.potential).name, "column": options.column,
        "window": options.window, "atoms": report.atoms, "wall_s": report.wall_s, "failures": report.failures,
        "boundaries": int(np.isfinite(table["energy"]).sum()), "within_2_percent": within}, indent=1))
    return SiteEnergyResult(report, table, within)
