"""Pictures of building blocks: an LAE cluster (two projections, atoms coloured by CNA) and the overview."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gbdist.compute.crystal import BCC, FCC, HCP, ICO, NAMES, OTHER, SC  # noqa: E402
from gbdist.compute.orientation import TiltAxis  # noqa: E402

TYPE_COLOURS = {code: (colour, NAMES[code]) for code, colour in (
    (FCC, "tab:blue"), (HCP, "tab:green"), (BCC, "tab:purple"), (ICO, "tab:olive"), (SC, "tab:brown"), (OTHER, "tab:red"))}
"""Colour and name of each structure type (gbdist's codes); fcc blue, hcp green, other red as in the paper."""


def type_colours(types: np.ndarray) -> np.ndarray:
    """Colour of each atom's structure type, (m,) str (unknown codes red, as 'other')."""
    return np.array([TYPE_COLOURS.get(int(c), TYPE_COLOURS[OTHER])[0] for c in types])


def type_caption(types: np.ndarray) -> str:
    """'blue fcc, green hcp, red other' and any other type present in ``types``."""
    present = set(np.unique(types).tolist())
    shown = [code for code in TYPE_COLOURS if code in (FCC, HCP, OTHER) or code in present]
    return ", ".join(f"{TYPE_COLOURS[c][0].removeprefix('tab:')} {TYPE_COLOURS[c][1]}" for c in shown)


def _cluster_panels(axes, positions: np.ndarray, cna: np.ndarray) -> None:
    """Two projections (x–y, y–z) of a cluster; the centre (row 0) marked with a black ring."""
    colours = type_colours(cna)
    for ax, (a, b), label in zip(axes, [(0, 1), (1, 2)], ["x–y", "y–z"]):
        ax.scatter(positions[:, a], positions[:, b], c=colours, s=60, edgecolors="k", linewidths=0.3)
        ax.scatter(positions[0, a], positions[0, b], s=220, facecolors="none", edgecolors="k", linewidths=1.8)
        ax.set_aspect("equal")
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("xyz"[a] + " (Å)", fontsize=7)
        ax.set_ylabel("xyz"[b] + " (Å)", fontsize=7)
        ax.tick_params(labelsize=6)


def lae_picture(path: Path, positions: np.ndarray, cna: np.ndarray, title: str) -> None:
    """PNG of one LAE cluster: positions (m, 3) Å relative to the centre, CNA classes (m,)."""
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.6))
    _cluster_panels(axes, positions, cna)
    fig.suptitle(title, fontsize=8)  # once, over both panels: a long id does not run into the other
    fig.text(0.5, 0.01, f"{type_caption(cna)} · ring: centre", ha="center", fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    fig.savefig(path, dpi=120)
    plt.close(fig)


@dataclass
class BoundarySlab:
    """The atoms of a thin slab through an LAE's centre, in the picture's frame (Å, centre at 0):
    ``xy`` (m, 2) across (in the GB plane) and up (along the normal), ``cna`` (m,), ``layer`` (m,)
    0 / 1 alternating atomic planes along the view, and ``view``, ``across`` naming the directions."""

    xy: np.ndarray
    cna: np.ndarray
    layer: np.ndarray
    view: str
    across: str
    normal: int


def boundary_slab(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, centre: int, normal: int,
                  cna: np.ndarray, tilt: TiltAxis | None = None, half_thickness: float = 2.0,
                  half_width: float = 18.0, half_height: float = 12.0) -> BoundarySlab:
    """Cut a slab through atom ``centre`` and project it along the view: the boundary's ``tilt`` axis,
    one lattice repeat thick, so every atomic column shows once; else the periodic in-plane box axis
    with the shortest period, ``2 × half_thickness`` Å thick. positions (n, 3) Å, cell (3, 3), pbc (3,)."""
    from ase.geometry import find_mic

    up = np.eye(3)[normal]
    if tilt is not None:
        view, depth_half = tilt.direction, tilt.period / 2
        view_name = f"tilt axis {tilt.label} ({tilt.angle:g}°)"
    else:
        in_plane = [a for a in range(3) if a != normal]
        periodic = [a for a in in_plane if pbc[a]] or in_plane
        axis = min(periodic, key=lambda a: np.linalg.norm(cell[a]))
        view, depth_half, view_name = np.eye(3)[axis], half_thickness, f"box axis {'xyz'[axis]}"
    across = np.cross(up, view)
    across /= np.linalg.norm(across)
    d, _ = find_mic(positions - positions[centre], cell, pbc)
    depth, x, y = d @ view, d @ across, d @ up
    keep = (depth >= -depth_half) & (depth < depth_half) & (np.abs(x) <= half_width) & (np.abs(y) <= half_height)
    order = np.argsort(depth[keep])
    gaps = np.concatenate([[0], np.diff(depth[keep][order]) > 0.3])  # a new atomic plane where the depth jumps
    layer = np.empty(int(keep.sum()), np.int64)
    layer[order] = np.cumsum(gaps) % 2
    across_name = "[" + " ".join(f"{c:g}" for c in np.round(across, 2) + 0.0) + "]"
    return BoundarySlab(np.column_stack([x[keep], y[keep]]), cna[keep], layer, view_name, across_name, normal)


def _draw_slab(ax, slab: BoundarySlab, r_cut: float, title: str, fontsize: int = 8) -> None:
    """Atoms as in the paper's Fig. 4: colour by CNA, filled / open for the two planes along the view."""
    colours = type_colours(slab.cna)
    filled = slab.layer == 0
    ax.scatter(slab.xy[filled, 0], slab.xy[filled, 1], c=colours[filled], s=28, edgecolors="k", linewidths=0.3)
    ax.scatter(slab.xy[~filled, 0], slab.xy[~filled, 1], facecolors="white", edgecolors=colours[~filled],
               s=28, linewidths=1.2)
    ax.add_patch(plt.Circle((0, 0), r_cut, fill=False, ls="--", lw=1.2, color="k"))
    ax.plot(0, 0, marker="+", color="k", ms=12, mew=2)
    x0, y0 = slab.xy[:, 0].min(), slab.xy[:, 1].min() - 1.5
    ax.plot([x0, x0 + 5], [y0, y0], color="k", lw=3)
    ax.text(x0 + 2.5, y0 - 0.4, "5 Å", ha="center", va="top", fontsize=fontsize)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=fontsize)


def boundary_picture(path: Path, slab: BoundarySlab, r_cut: float, title: str) -> None:
    """PNG of an LAE inside its boundary (GB plane horizontal, view along its tilt axis or a box axis)."""
    fig, ax = plt.subplots(figsize=(7, 5))
    _draw_slab(ax, slab, r_cut, title, fontsize=9)
    fig.text(0.5, 0.01, f"view along the {slab.view}, {slab.across} across, GB normal {'xyz'[slab.normal]} "
             f"up · {type_caption(slab.cna)}\nfilled / open: alternate planes along the view · + centre, "
             f"dashed: r_cut = {r_cut:g} Å", ha="center", fontsize=7)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def boundary_overview(path: Path, slabs: list[tuple[str, BoundarySlab]], gains: list[float], r_cut: float,
                      columns: int = 2) -> None:
    """All top LAEs inside their boundaries, with their gains as bars."""
    n = len(slabs)
    rows = -(-n // columns)
    fig = plt.figure(figsize=(5.2 * columns, 3.6 * rows + 2.4))
    grid = fig.add_gridspec(rows + 1, columns, height_ratios=[0.8 * rows / max(rows, 1) + 0.6] + [1] * rows)
    bars = fig.add_subplot(grid[0, :])
    bars.barh(range(n)[::-1], gains, color="0.4")
    bars.set_yticks(range(n)[::-1], [title for title, _ in slabs], fontsize=7)
    bars.set_xlabel("gain (LER model)", fontsize=8)
    for k, (title, slab) in enumerate(slabs):
        _draw_slab(fig.add_subplot(grid[1 + k // columns, k % columns]), slab, r_cut, f"{title}, view: {slab.view}",
                   fontsize=8)
    types = np.concatenate([slab.cna for _, slab in slabs])
    fig.text(0.5, 0.005, f"GB plane horizontal · {type_caption(types)} · filled / open: alternate planes "
             "along the view · + centre, dashed: r_cut", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.015, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
