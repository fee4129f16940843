"""Write learning results to a folder: Table I as Markdown + JSON, predictions, figures, curves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from gbdist.learning.labels import Property
from gbdist.learning.plots import confusion_plot, learning_curve_plot, parity_plot
from gbdist.learning.protocol import CellResult

SCORE_NAMES = {"regression": "100·(1 − RMSE/mean)", "classification": "accuracy"}


def table1_json(results: dict[str, dict[str, CellResult]]) -> dict:
    """``{property: {"ASR"|"LER"|"random": {"mean", "std", "scores", …secondary}}}``."""
    return {prop: {rep: cell.summary() for rep, cell in cells.items()} for prop, cells in results.items()}


def table1_markdown(table: dict, props: list[Property], n_splits: int, paper: dict | None = None,
                    ler_eps: float | None = None) -> str:
    """Markdown table of mean ± std per cell, with the paper's numbers beside ours when given."""
    reps = list(next(iter(table.values())))
    paper_reps = [r for r in reps if paper and any(r in cells for cells in paper.values())]
    header = ["property", "score"] + reps + [f"paper {r}" for r in paper_reps]
    lines = [f"Mean ± std over {n_splits} random 50/50 splits (tuned and fitted on the training half)."
             + (f" LER: the unique LAEs at eps {ler_eps:.4f}." if ler_eps is not None else ""), "",
             "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    kinds = {p.name: p.kind for p in props}
    for prop, cells in table.items():
        row = [prop, SCORE_NAMES[kinds[prop]]] + [f"{cells[r]['mean']:.1f} ± {cells[r]['std']:.1f}" for r in reps]
        row += [f"{paper[prop][r]:.1f}" if r in paper.get(prop, {}) else "–" for r in paper_reps]
        lines.append("| " + " | ".join(row) + " |")
    secondary = [(prop, r, key, v) for prop, cells in table.items() for r in reps
                 for key, v in cells[r].items() if isinstance(v, dict)]
    if secondary:
        lines += ["", "| property | representation | figure | mean ± std |", "| --- | --- | --- | --- |"]
        lines += [f"| {p} | {r} | {k} | {v['mean']:.4g} ± {v['std']:.2g} |" for p, r, k, v in secondary]
    return "\n".join(lines) + "\n"


def write_predictions(path: Path, results: dict[str, dict[str, CellResult]], props: list[Property],
                      gb_ids: np.ndarray) -> None:
    """Every held-out prediction: property, representation, split, GB id, true and predicted value."""
    truth = {p.name: dict(zip(p.rows.tolist(), p.y.tolist())) for p in props}
    classes = {p.name: p.classes for p in props}
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["property", "representation", "split", "id", "true", "predicted"])
        for prop, cells in results.items():
            decode = (lambda c, k=classes[prop]: k[int(c)]) if classes[prop] else float
            for rep, cell in cells.items():
                for split, rows, pred in cell.predictions:
                    for row, value in zip(rows.tolist(), pred.tolist()):
                        writer.writerow([prop, rep, split, gb_ids[row], decode(truth[prop][row]), decode(value)])


def write_figures(out: Path, results: dict[str, dict[str, CellResult]], props: list[Property]) -> list[Path]:
    """Parity plots (regression) and summed confusion matrices (classification) over all splits."""
    written = []
    for prop in props:
        cells = {rep: c for rep, c in results[prop.name].items() if rep != "random"}
        truth = dict(zip(prop.rows.tolist(), prop.y.tolist()))
        pairs = {rep: (np.array([truth[r] for _, rows, _ in c.predictions for r in rows.tolist()]),
                       np.concatenate([pred for _, _, pred in c.predictions])) for rep, c in cells.items()}
        if prop.kind == "regression":
            path = out / f"parity_{prop.name}.png"
            parity_plot(path, pairs, prop.name)
        else:
            path = out / f"confusion_{prop.name}.png"
            k = prop.n_classes
            counts = {rep: np.bincount(t.astype(int) * k + p.astype(int), minlength=k * k).reshape(k, k)
                      for rep, (t, p) in pairs.items()}
            confusion_plot(path, counts, prop.classes, prop.name)
        written.append(path)
    return written


def write_table1(out: Path, results, props: list[Property], gb_ids: np.ndarray, n_splits: int,
                 run_info: dict, paper: dict | None = None) -> dict:
    """All Table I outputs into ``out``; returns the JSON table."""
    out.mkdir(parents=True, exist_ok=True)
    table = table1_json(results)
    (out / "table1.json").write_text(json.dumps(table, indent=1))
    (out / "table1.md").write_text(table1_markdown(table, props, n_splits, paper, run_info.get("ler_eps")))
    (out / "run.json").write_text(json.dumps(run_info | ({"paper": paper} if paper else {}), indent=1))
    write_predictions(out / "predictions.csv", results, props, gb_ids)
    write_figures(out, results, props)
    return table


def write_learning_curve(out: Path, rows: list[dict], prop: str) -> None:
    """``curve_<property>.csv`` and ``.png``."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"curve_{prop}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    learning_curve_plot(out / f"curve_{prop}.png", rows, f"learning curve: {prop}")
    (out / f"curve_{prop}.md").write_text(curve_markdown(rows, prop))


def curve_markdown(rows: list[dict], prop: str) -> str:
    """``curve_<property>.md``: the curve's picture and its table (mean ± std per point)."""
    balanced = "balanced_mean" in rows[0]
    lines = [f"# Learning curve: {prop}", "", f"![learning curve](curve_{prop}.png)", "",
             f"Held-out score against training GBs, mean ± std over {rows[0]['n_fits']} random splits per point"
             + (" (accuracy, and balanced accuracy)." if balanced else "."), "",
             "| representation | fraction | training GBs | score |" + (" balanced accuracy |" if balanced else ""),
             "| --- | --- | --- | --- |" + (" --- |" if balanced else "")]
    for r in rows:
        cells = [r["representation"], f"{r['fraction']:.2f}", str(r["n_train"]), f"{r['mean']:.1f} ± {r['std']:.1f}"]
        if balanced:
            cells.append(f"{r['balanced_mean']:.1f} ± {r['balanced_std']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def site_model_markdown(summary: dict, blocks: list[dict]) -> str:
    """``report.md`` of a per-atom model: scores over the splits, the paired differences with ASR_area,
    and the cheapest and costliest building blocks with their pictures (``blocks``: entries of
    ``explain.report.draw_laes`` with ``count``, ``mean_ev``, ``std_ev``)."""
    s = summary["stats"]

    def ms(key: str, scale: float = 1.0, digits: int = 2) -> str:
        return f"{s[key]['mean'] * scale:.{digits}f} ± {s[key]['std'] * scale:.{digits}f}"

    def paired(key: str) -> str:
        p = summary[key]
        return f"{p['mean']:+.2f} ± {p['se']:.2f} (mean / SE {p['mean_over_se']:.1f})"

    lines = [f"# Site model: {summary['column']} per atom, {summary['property']} per boundary", "",
             f"XGBoost (xgboost.dask) on the SOAP rows of the training boundaries, {summary['splits']} random 50/50 "
             f"splits of the {summary['boundaries']} labelled boundaries (seed {summary['seed']}: Table I's splits), "
             f"{summary['rows']:,} LAE rows in all. Rounds stop early on a fifth of the training boundaries; no "
             "atom of a test boundary is seen before it is scored. A test boundary's energy is the sum of its "
             f"predicted excess energies within {summary['window']} Å of its plane (placed by the predictions) over "
             "its area; the additive model predicts each atom by the mean excess of its unique LAE "
             f"(eps {summary['eps']}) over the training rows. Energy score: 100 · (1 − RMSE / mean), as Table I.", "",
             "| figure | mean ± std over splits |", "| --- | --- |",
             f"| per-atom MAE (meV/atom) | {ms('mae_mev')} |", f"| per-atom R² | {ms('r2', digits=4)} |",
             f"| energy score, summed site predictions | {ms('site')} |",
             f"| energy score, additive building blocks | {ms('additive')} |",
             f"| energy score, ASR_area (same splits) | {ms('ASR_area')} |",
             f"| energy score, the test rows' own values summed (the window rule's ceiling) | {ms('truth')} |",
             f"| rounds | {ms('n_rounds', digits=0)} |", f"| wall per split (s) | {ms('wall_s', digits=1)} |",
             f"| peak RSS of the largest worker (GiB) | {ms('peak_rss_gib')} |", "",
             f"Paired over the splits, site − ASR_area: {paired('site_minus_ASR_area')}; additive − ASR_area: "
             f"{paired('additive_minus_ASR_area')}.", "",
             "![per atom, split 0](parity_atoms.png) ![per boundary, every split](parity_boundaries.png)", "",
             "## Building blocks", "",
             "Mean excess energy of the rows assigned to each unique LAE (all rows: a description, not a score), "
             "cheapest and costliest among those with at least 20 rows; `building_blocks.csv` lists them all.", "",
             "| LAE | mean excess (meV) | std (meV) | rows | source | hcp | fcc | picture |", "| --- |" + " --- |" * 7]
    for b in blocks:
        drawn = (f"{b['hcp_fraction']:.2f} | {b['fcc_fraction']:.2f} | [cluster]({b['png']}) · "
                 f"[in its boundary]({b['boundary_png']})" if "png" in b else f"– | – | not drawn: {b.get('error')}")
        lines.append(f"| {b['lae']} | {1000 * b['mean_ev']:.1f} | {1000 * b['std_ev']:.1f} | {b['count']:,} | "
                     f"{b['gb']} atom {b['atom']} | {drawn} |")
    return "\n".join(lines) + "\n"
