"""Pictures of building blocks: an LAE cluster (two projections, atoms coloured by CNA) and the overview."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

CNA_COLOURS = {1: "tab:blue", 2: "tab:green"}  # fcc blue, hcp green, everything else red (as in the paper)


def _cluster_panels(axes, positions: np.ndarray, cna: np.ndarray, title: str) -> None:
    """Two projections (x–y, y–z) of a cluster; the centre (row 0) marked with a black ring."""
    colours = [CNA_COLOURS.get(int(c), "tab:red") for c in cna]
    for ax, (a, b), label in zip(axes, [(0, 1), (1, 2)], ["x–y", "y–z"]):
        ax.scatter(positions[:, a], positions[:, b], c=colours, s=60, edgecolors="k", linewidths=0.3)
        ax.scatter(positions[0, a], positions[0, b], s=220, facecolors="none", edgecolors="k", linewidths=1.8)
        ax.set_aspect("equal")
        ax.set_title(f"{title} ({label})", fontsize=8)
        ax.set_xlabel("xyz"[a] + " (Å)", fontsize=7)
        ax.set_ylabel("xyz"[b] + " (Å)", fontsize=7)
        ax.tick_params(labelsize=6)


def lae_picture(path: Path, positions: np.ndarray, cna: np.ndarray, title: str) -> None:
    """PNG of one LAE cluster: positions (m, 3) Å relative to the centre, CNA classes (m,)."""
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
    _cluster_panels(axes, positions, cna, title)
    fig.text(0.5, 0.01, "blue fcc · green hcp · red other · ring: centre", ha="center", fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def overview_plot(path: Path, clusters: list[tuple[str, np.ndarray, np.ndarray]], gains: list[float]) -> None:
    """All top LAEs at a glance (x–y and y–z for each) and their gains as bars."""
    n = len(clusters)
    fig = plt.figure(figsize=(8, 2.2 * n + 2.5))
    grid = fig.add_gridspec(n + 1, 2, height_ratios=[1.4] + [1] * n)
    bars = fig.add_subplot(grid[0, :])
    bars.barh(range(n)[::-1], gains, color="0.4")
    bars.set_yticks(range(n)[::-1], [c[0] for c in clusters], fontsize=7)
    bars.set_xlabel("gain (LER model)", fontsize=8)
    for row, (title, positions, cna) in enumerate(clusters, start=1):
        _cluster_panels([fig.add_subplot(grid[row, 0]), fig.add_subplot(grid[row, 1])], positions, cna, title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
