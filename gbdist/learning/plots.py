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
    """Mean ± std score vs number of training GBs, one line per representation; for classes a
    second panel with the balanced accuracy."""
    panels = [("mean", "std", "score (%)")]
    if "balanced_mean" in rows[0]:
        panels = [("mean", "std", "accuracy (%)"), ("balanced_mean", "balanced_std", "balanced accuracy (%)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, (mean_key, std_key, label) in zip(axes[0], panels):
        for rep in sorted({r["representation"] for r in rows}):
            mine = [r for r in rows if r["representation"] == rep]
            n = np.array([r["n_train"] for r in mine])
            mean, std = np.array([r[mean_key] for r in mine]), np.array([r[std_key] for r in mine])
            ax.errorbar(n, mean, yerr=std, marker="o", capsize=3, label=rep)
        ax.set(xlabel="training GBs", ylabel=label, title=title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def site_parity_plot(path: Path, y_true: np.ndarray, y_pred: np.ndarray, quantity: str) -> None:
    """Predicted vs true per atom (m,), as a hexbin of counts (log scale): too many atoms for dots."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    lo, hi = float(np.percentile(y_true, 0.05)), float(np.percentile(y_true, 99.95))
    image = ax.hexbin(y_true, y_pred, gridsize=80, bins="log", extent=(lo, hi, lo, hi), mincnt=1, cmap="viridis")
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=1)
    mae = float(np.mean(np.abs(y_true - y_pred)))
    ax.set(title=f"per atom: MAE {1000 * mae:.3g} m{quantity}, {len(y_true):,} atoms",
           xlabel=f"true ({quantity})", ylabel=f"predicted ({quantity})")
    fig.colorbar(image, ax=ax, label="atoms")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
