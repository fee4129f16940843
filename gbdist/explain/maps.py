"""Pictures of the LAE space: every SOAP row on its first two principal axes (matplotlib, PNG).

``xy`` arguments are (n, 2) coordinates on PC1–PC2; ``evr`` the explained-variance ratios of
the two axes, printed in the axis labels.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gbdist.compute.crystal import FCC, HCP, OTHER  # noqa: E402
from gbdist.explain.pictures import TYPE_COLOURS, type_caption, type_colours  # noqa: E402

GRIDSIZE = 90


def _type_legend(ax, types: np.ndarray) -> None:
    """Legend entries for fcc, hcp, other and any other structure type present in ``types``."""
    present = set(np.unique(types).tolist())
    for code, (colour, name) in TYPE_COLOURS.items():
        if code in (FCC, HCP, OTHER) or code in present:
            ax.scatter([], [], c=colour, s=20, label=name)


def _axes(ax, evr) -> None:
    ax.set_xlabel(f"PC1 ({100 * evr[0]:.1f}% of the variance)")
    ax.set_ylabel(f"PC2 ({100 * evr[1]:.1f}%)")


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def density_map(path: Path, xy: np.ndarray, evr, unique_xy: np.ndarray, unique_count: np.ndarray,
                eps: float, top: int = 10, seeds: tuple[str, ...] = ("fcc",)) -> None:
    """Log density of all LAEs, the unique LAEs (marker area by count, the ``top`` most common
    numbered) and the seeds (unique LAEs 0 … k − 1, perfect crystals named by ``seeds``, stars)."""
    k = len(seeds)
    fig, ax = plt.subplots(figsize=(7.5, 6))
    hb = ax.hexbin(xy[:, 0], xy[:, 1], gridsize=GRIDSIZE, bins="log", cmap="Greys", mincnt=1, linewidths=0)
    fig.colorbar(hb, ax=ax, label="LAEs per cell")
    size = 12 + 300 * np.sqrt(unique_count / unique_count.max())
    ax.scatter(unique_xy[k:, 0], unique_xy[k:, 1], s=size[k:], facecolors="none", edgecolors="tab:orange",
               linewidths=1.0, label=f"unique LAEs at eps {eps:.4f} (area ∝ count)")
    ax.scatter(unique_xy[:k, 0], unique_xy[:k, 1], marker="*", s=260, color="tab:blue", edgecolors="k",
               label=f"perfect {', '.join(seeds)} (unique LAE{'s' if k > 1 else ''} 0{f'–{k - 1}' if k > 1 else ''})",
               zorder=5)
    for k in np.argsort(-unique_count, kind="stable")[:top]:
        ax.annotate(str(k), unique_xy[k], xytext=(4, 4), textcoords="offset points", fontsize=9, color="tab:red")
    _axes(ax, evr)
    ax.set_title(f"{len(xy):,} LAEs and {len(unique_xy)} unique LAEs (numbers: the {top} most common)")
    ax.legend(loc="best", fontsize=8)
    _save(fig, path)


def cna_map(path: Path, xy: np.ndarray, evr, cna: np.ndarray, sample: int = 60_000, seed: int = 0) -> None:
    """LAEs coloured by the structure type of their centre (blue fcc, green hcp, purple bcc, olive ico,
    brown sc, red other; the legend lists the types present): a random sample."""
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(xy))[:sample]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.scatter(xy[pick, 0], xy[pick, 1], c=type_colours(cna[pick]), s=2, alpha=0.4, linewidths=0)
    _type_legend(ax, cna[pick])
    _axes(ax, evr)
    ax.set_title(f"structure type of the centre ({len(pick):,} of {len(xy):,} LAEs)")
    ax.legend(loc="best", fontsize=8, title="centre atom")
    _save(fig, path)


def property_map(path: Path, xy: np.ndarray, evr, values: np.ndarray, label: str) -> None:
    """Mean of a per-LAE value (e.g. 1 if its GB is thermally activated, else 0) in each hexbin cell."""
    known = ~np.isnan(values)
    fig, ax = plt.subplots(figsize=(7.5, 6))
    hb = ax.hexbin(xy[known, 0], xy[known, 1], C=values[known], reduce_C_function=np.mean, gridsize=GRIDSIZE,
                   cmap="coolwarm", mincnt=5, linewidths=0)
    fig.colorbar(hb, ax=ax, label=label)
    _axes(ax, evr)
    ax.set_title(f"{label}, per cell of ≥ 5 LAEs")
    _save(fig, path)


def gb_map(path: Path, xy: np.ndarray, evr, mine: np.ndarray, gb_id: str, cna: np.ndarray) -> None:
    """One GB's LAEs (coloured by CNA) over the grey density of all LAEs."""
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.hexbin(xy[:, 0], xy[:, 1], gridsize=GRIDSIZE, bins="log", cmap="Greys", mincnt=1, linewidths=0, alpha=0.6)
    colours = type_colours(cna[mine])
    ax.scatter(xy[mine, 0], xy[mine, 1], c=colours, s=10, edgecolors="k", linewidths=0.2)
    _axes(ax, evr)
    ax.set_title(f"{gb_id}: its {int(np.count_nonzero(mine))} LAEs ({type_caption(cna[mine])}) over all LAEs")
    _save(fig, path)


def onto_map(path: Path, background: np.ndarray, evr, xy: np.ndarray, cna: np.ndarray, novel: np.ndarray | None,
             what: str, sample: int = 60_000, seed: int = 0) -> None:
    """LAEs placed on another store's map (coloured by CNA; novel ones, if given, as black
    crosses) over that store's grey density ``background`` (m, 2)."""
    pick = np.random.default_rng(seed).permutation(len(xy))[:sample]
    fig, ax = plt.subplots(figsize=(7.5, 6))
    hb = ax.hexbin(background[:, 0], background[:, 1], gridsize=GRIDSIZE, bins="log", cmap="Greys", mincnt=1,
                   linewidths=0, alpha=0.6)
    fig.colorbar(hb, ax=ax, label="LAEs of the map's store per cell")
    ax.scatter(xy[pick, 0], xy[pick, 1], c=type_colours(cna[pick]), s=6, alpha=0.6, linewidths=0)
    _type_legend(ax, cna[pick])
    if novel is not None and novel.any():
        ax.scatter(xy[novel, 0], xy[novel, 1], marker="x", c="k", s=18, linewidths=0.8,
                   label=f"novel ({int(novel.sum())}: beyond eps of every unique LAE)")
    _axes(ax, evr)
    ax.set_title(f"{what}: {len(xy):,} LAEs on the map of {len(background):,}", fontsize=10)
    ax.legend(loc="best", fontsize=8, title="centre atom")
    _save(fig, path)
