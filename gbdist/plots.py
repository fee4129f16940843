"""Figures of learning results: parity plots, confusion matrices, learning curves (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def parity_plot(path: Path, panels: dict[str, tuple[np.ndarray, np.ndarray]], quantity: str) -> None:
    """Predicted vs true, one panel per representation: panels = {rep: (y_true (m,), y_pred (m,))}."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    for ax, (rep, (y_true, y_pred)) in zip(axes[0], panels.items()):
        lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=1)
        ax.scatter(y_true, y_pred, s=4, alpha=0.3)
        rmse = float(np.sqrt(np.mean((y_true - y_pred) ** 2)))
        ax.set(title=f"{rep}: RMSE {rmse:.3g}", xlabel=f"true {quantity}", ylabel=f"predicted {quantity}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def confusion_plot(path: Path, panels: dict[str, np.ndarray], classes: tuple, title: str) -> None:
    """Row-normalised confusion matrices (true × predicted counts), one panel per representation."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.6), squeeze=False)
    for ax, (rep, counts) in zip(axes[0], panels.items()):
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
        for (i, j), value in np.ndenumerate(share):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value > 0.5 else "black")
        ticks = range(len(classes))
        ax.set(xticks=ticks, yticks=ticks, xticklabels=classes, yticklabels=classes,
               xlabel="predicted", ylabel="true", title=f"{title}: {rep}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def learning_curve_plot(path: Path, rows: list[dict], title: str) -> None:
    """Mean ± std score vs number of training GBs, one line per representation."""
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for rep in sorted({r["representation"] for r in rows}):
        mine = [r for r in rows if r["representation"] == rep]
        n = np.array([r["n_train"] for r in mine])
        mean, std = np.array([r["mean"] for r in mine]), np.array([r["std"] for r in mine])
        ax.errorbar(n, mean, yerr=std, marker="o", capsize=3, label=rep)
    ax.set(xlabel="training GBs", ylabel="score (%)", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
