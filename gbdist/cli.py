"""The command line: ``gbdist run JOB.yaml`` and one command per stage. It only parses and calls."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.markup import escape
from rich.console import Console
from rich.table import Table

from gbdist.errors import GbdistError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Learn grain-boundary properties from atomistic structures, at scale.")
console = Console(stderr=True)


def _setup_logging(verbose: bool) -> None:
    import distributed  # noqa: F401  (it configures its loggers on import; quieten them after)

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("gbdist").setLevel(logging.INFO)
    logging.getLogger("distributed").setLevel(logging.ERROR)


def _print_summary(report) -> None:
    soap = report.soap
    table = Table(title=f"gbdist: {report.store}", show_header=False)
    if soap:
        table.add_row("grain boundaries", f"{soap.n_gb}")
        table.add_row("LAEs (rows)", f"{soap.n_lae}")
        table.add_row("SOAP features", f"{soap.n_features}")
        table.add_row("chunks computed", f"{soap.chunks_computed} of {soap.chunks_total}")
        if soap.chunks_computed:
            table.add_row("select wall", f"{soap.select_wall_s:.1f} s")
            table.add_row("SOAP wall", f"{soap.soap_wall_s:.1f} s")
            table.add_row("SOAP efficiency", f"{soap.efficiency:.3f} (dscribe CPU-s {soap.kernel_cpu_s:.1f} "
                                             f"÷ wall × {soap.worker_threads} worker threads)")
    if report.asr_wall_s:
        table.add_row("ASR wall", f"{report.asr_wall_s:.1f} s")
    if report.lae:
        _lae_rows(table, report.lae)
    if report.skipped:
        table.add_row("not run", ", ".join(report.skipped) + (" (already done)" if report.soap and not report.failures else ""))
    table.add_row("total wall", f"{report.wall_s:.1f} s")
    table.add_row("failures", f"{len(report.failures)}")
    console.print(table)
    for f in report.failures:
        console.print(f"[red]failed[/red] {escape(f['error'])}")


def _lae_rows(table, lae) -> None:
    table.add_row("unique LAEs", f"{lae.n_unique} at eps {lae.eps} ({lae.n_orphan_leaders} from the orphan pass)")
    table.add_row("LAE wall", f"{lae.wall_s:.1f} s; peak RSS {lae.peak_rss_gib:.2f} GiB (driver + workers)")


WORKERS = typer.Option(None, help="local worker processes (default: all cores)")
SCHEDULER = typer.Option(None, help="address of a running Dask scheduler")
CLUSTER = typer.Option(None, "--cluster", help="cluster file (YAML): local workers, a scheduler address, "
                       "or SLURM/PBS batch jobs through dask-jobqueue (examples in deploy/)")


def _cluster_config(workers, scheduler, cluster_file=None):
    """ClusterConfig from a --cluster file, or from --workers / --scheduler (defaults where not given)."""
    from gbdist.cluster import ClusterConfig, load_cluster

    if cluster_file is not None:
        if workers or scheduler:
            raise typer.BadParameter("give --cluster, or --workers / --scheduler, not both")
        with _user_errors():
            return load_cluster(cluster_file)
    return ClusterConfig(**({"scheduler": scheduler} | ({"workers": workers} if workers else {})))


@contextmanager
def _user_errors():
    """Turn errors a user can act on (bad input, store, job file) into a message and exit code 2."""
    from pydantic import ValidationError

    try:
        yield
    except (GbdistError, ValidationError) as err:
        console.print(f"[red]error:[/red] {escape(str(err))}")
        raise typer.Exit(2) from None


def _run(job) -> None:
    from gbdist.job import run_job

    with _user_errors():
        report = run_job(job)
    _print_summary(report)
    if report.failures:
        console.print(f"[red]{len(report.failures)} failure(s)[/red]; the other structures finished.")
        raise typer.Exit(1)


@app.command()
def run(job_file: Path = typer.Argument(..., help="job file (YAML)"),
        cluster_file: Optional[Path] = CLUSTER,
        verbose: bool = typer.Option(True, help="log progress")) -> None:
    """Run the stages of a job file (on the cluster of --cluster, if given, instead of the job's)."""
    from gbdist.config import load_job

    _setup_logging(verbose)
    with _user_errors():
        job = load_job(job_file)
    if cluster_file is not None:
        job.cluster = _cluster_config(None, None, cluster_file)
    _run(job)


@app.command()
def soap(
    inputs: list[str] = typer.Argument(..., help="structure files, directories or glob patterns"),
    store: str = typer.Option(..., "--store", help="Zarr store path or fsspec URL"),
    workers: Optional[int] = WORKERS,
    scheduler: Optional[str] = SCHEDULER,
    cluster_file: Optional[Path] = CLUSTER,
    element: str = typer.Option("Ni", help="element of every atom when a dump has no element column"),
    pad: float = typer.Option(5.0, help="Å added to the GB extent on each side"),
    normal: str = typer.Option("auto", help="GB normal axis: auto (the open axis), x, y or z"),
    r_cut: float = typer.Option(5.0, help="SOAP cutoff, Å"),
    n_max: int = typer.Option(12, help="SOAP radial basis size"),
    l_max: int = typer.Option(12, help="SOAP maximum angular degree"),
    sigma: float = typer.Option(0.5, help="SOAP Gaussian width, Å"),
    chunk_rows: int = typer.Option(4096, help="LAE rows per chunk (one task each)"),
    verbose: bool = typer.Option(True, help="log progress"),
) -> None:
    """Select the GB atoms of INPUTS, compute their SOAP vectors into the store, then the ASR."""
    from gbdist.config import JobConfig

    _setup_logging(verbose)
    with _user_errors():
        job = JobConfig(
            store=store, inputs=inputs, read={"element": element},
            select={"pad": pad, "normal": normal},
            soap={"r_cut": r_cut, "n_max": n_max, "l_max": l_max, "sigma": sigma},
            chunk_rows=chunk_rows, cluster=_cluster_config(workers, scheduler, cluster_file), stages=["soap", "asr"],
        )
    _run(job)


def _parse_sweep(text: str) -> list[float]:
    try:
        lo, hi, step = (float(v) for v in text.split(":"))
    except ValueError:
        raise typer.BadParameter("--sweep takes START:STOP:STEP, e.g. 0.01:0.08:0.005") from None
    if not (0 < lo < hi and step > 0):
        raise typer.BadParameter("--sweep needs 0 < START < STOP and STEP > 0")
    return [round(v, 6) for v in np.arange(lo, hi + step / 2, step)]


@app.command()
def lae(
    store: str = typer.Option(..., "--store", help="store with a finished soap stage"),
    eps: float = typer.Option(0.032, help="SOAP distance threshold for unique LAEs"),
    sweep: Optional[str] = typer.Option(None, help="START:STOP:STEP: count unique LAEs per eps, save a PNG"),
    out: Path = typer.Option(Path("lae-sweep.png"), help="PNG of the sweep"),
    workers: Optional[int] = WORKERS,
    scheduler: Optional[str] = SCHEDULER,
    cluster_file: Optional[Path] = CLUSTER,
    partitions: Optional[int] = typer.Option(None, help="discovery partitions (default: 2 per worker thread)"),
    verbose: bool = typer.Option(True, help="log progress"),
) -> None:
    """Find the unique local atomic environments, label every LAE and write the LER."""
    import time

    from gbdist.cluster import dask_client
    from gbdist.lock import store_lock
    from gbdist.stages.lae import run_lae_stage, run_lae_sweep

    _setup_logging(verbose)
    cluster = _cluster_config(workers, scheduler, cluster_file)
    t0 = time.perf_counter()
    with _user_errors(), store_lock(store), dask_client(cluster) as client:
        if sweep:
            eps_values = _parse_sweep(sweep)
            counts, best = run_lae_sweep(client, store, eps_values, out, partitions=partitions)
        else:
            report = run_lae_stage(client, store, eps, partitions=partitions)
    if sweep:
        table = Table("eps", "unique LAEs", title=f"unique LAEs against eps ({store})")
        for e, n in zip(eps_values, counts):
            table.add_row(f"{e:.4f}" + ("  ← knee" if e == best else ""), str(n))
        console.print(table)
        console.print(f"knee of the curve: eps = {best:.4f}; curve saved to {out}")
        return
    table = Table(title=f"gbdist lae: {store}", show_header=False)
    table.add_row("rows", str(report.n_rows))
    _lae_rows(table, report)
    table.add_row("results in", report.group)
    table.add_row("total wall", f"{time.perf_counter() - t0:.1f} s")
    console.print(table)


def _learning_inputs(store: str, labels: str, properties: list[str] | None, eps: float | None):
    """(gb ids, {rep: (X, names)}, properties, LER eps) for the learning commands."""
    from gbdist.features import read_representations
    from gbdist.labels import align_labels, load_labels
    from gbdist.store import open_store

    group = open_store(store)
    reps = read_representations(group, eps)
    if not reps:
        raise GbdistError(f"{store}: no ASR or LER yet; run `gbdist run` (or soap and lae) first")
    if eps is None and "lae_default" in group.attrs:
        eps = float(group.attrs["lae_default"])
    gb_ids = group["gb/id"][:]
    return gb_ids, reps, align_labels(load_labels(labels), gb_ids, properties or None), eps


def _model_params(class_weight: str):
    from gbdist.learn import ModelParams

    return ModelParams(class_weight=class_weight)


_LABELS_HELP = "labels CSV (id column + property columns), or 'olmsted' for the Olmsted Table I labels"


@app.command()
def evaluate(
    store: str = typer.Option(..., "--store", help="store with ASR (and LER) computed"),
    labels: str = typer.Option(..., "--labels", help=_LABELS_HELP),
    out: Path = typer.Option(Path("table1"), "--out", help="output folder"),
    prop: Optional[list[str]] = typer.Option(None, "--property", help="property column(s) (default: all)"),
    splits: int = typer.Option(50, help="random 50/50 splits"),
    seed: int = typer.Option(0, help="seed of the splits, CV folds and boosters"),
    eps: Optional[float] = typer.Option(None, help="LER of this eps run (default: the store's default)"),
    class_weight: str = typer.Option("none", help="classification: none or balanced (training rows only)"),
    workers: Optional[int] = WORKERS,
    scheduler: Optional[str] = SCHEDULER,
    cluster_file: Optional[Path] = CLUSTER,
    verbose: bool = typer.Option(True, help="log progress"),
) -> None:
    """The paper's Table I protocol: random 50/50 splits, tune + fit on one half, score the other."""
    import time

    from gbdist.cluster import dask_client
    from gbdist.datasets.olmsted import PAPER_TABLE1
    from gbdist.evaluate import run_table1
    from gbdist.reports import write_table1

    _setup_logging(verbose)
    t0 = time.perf_counter()
    with _user_errors():
        gb_ids, reps, props, eps = _learning_inputs(store, labels, prop, eps)
        model = _model_params(class_weight)
        with dask_client(_cluster_config(workers, scheduler, cluster_file)) as client:
            results = run_table1(client, {r: x for r, (x, _) in reps.items()}, props, splits, seed, model)
        wall = time.perf_counter() - t0
        info = {"store": store, "labels": labels, "splits": splits, "seed": seed, "ler_eps": eps,
                "model": model.model_dump(), "wall_s": wall}
        write_table1(out, results, props, gb_ids, splits, info,
                     PAPER_TABLE1 if labels == "olmsted" else None)
    typer.echo((out / "table1.md").read_text())
    console.print(f"Table I in {out}/ ({splits} splits, {wall:.1f} s)")


def _parse_fractions(text: str) -> list[float]:
    try:
        fractions = [float(v) for v in text.split(",")]
    except ValueError:
        raise typer.BadParameter("--fractions takes comma-separated numbers, e.g. 0.1,0.3,0.5") from None
    if not all(0 < f < 1 for f in fractions):
        raise typer.BadParameter("--fractions must lie strictly between 0 and 1")
    return fractions


@app.command()
def curve(
    store: str = typer.Option(..., "--store", help="store with ASR (and LER) computed"),
    labels: str = typer.Option(..., "--labels", help=_LABELS_HELP),
    prop: str = typer.Option("energy", "--property", help="property column"),
    out: Path = typer.Option(Path("table1"), "--out", help="output folder"),
    fractions: str = typer.Option("0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9", help="training fractions"),
    fits: int = typer.Option(25, help="random splits (refits) per fraction"),
    seed: int = typer.Option(0, help="seed of the splits, CV folds and boosters"),
    eps: Optional[float] = typer.Option(None, help="LER of this eps run (default: the store's default)"),
    workers: Optional[int] = WORKERS,
    scheduler: Optional[str] = SCHEDULER,
    cluster_file: Optional[Path] = CLUSTER,
    verbose: bool = typer.Option(True, help="log progress"),
) -> None:
    """Learning curve (the paper's Fig. 3): held-out score against the training fraction."""
    import time

    from gbdist.cluster import dask_client
    from gbdist.evaluate import run_learning_curve
    from gbdist.reports import write_learning_curve

    _setup_logging(verbose)
    fraction_list = _parse_fractions(fractions)
    t0 = time.perf_counter()
    with _user_errors():
        _, reps, props, _ = _learning_inputs(store, labels, [prop], eps)
        with dask_client(_cluster_config(workers, scheduler, cluster_file)) as client:
            rows = run_learning_curve(client, {r: x for r, (x, _) in reps.items()}, props[0],
                                      fraction_list, fits, seed, _model_params("none"))
        write_learning_curve(out, rows, prop)
    table = Table("representation", "fraction", "training GBs", "score", title=f"learning curve: {prop}")
    for r in rows:
        table.add_row(r["representation"], f"{r['fraction']:.2f}", str(r["n_train"]), f"{r['mean']:.1f} ± {r['std']:.1f}")
    console.print(table)
    console.print(f"curve in {out}/curve_{prop}.csv and .png ({time.perf_counter() - t0:.1f} s)")


@app.command()
def learn(
    store: str = typer.Option(..., "--store", help="store with ASR (and LER) computed"),
    labels: str = typer.Option(..., "--labels", help=_LABELS_HELP),
    out: Path = typer.Option(Path("models"), "--out", help="output folder for the models"),
    prop: Optional[list[str]] = typer.Option(None, "--property", help="property column(s) (default: all)"),
    seed: int = typer.Option(0, help="seed of the CV folds and boosters"),
    eps: Optional[float] = typer.Option(None, help="LER of this eps run (default: the store's default)"),
    class_weight: str = typer.Option("none", help="classification: none or balanced"),
    workers: Optional[int] = WORKERS,
    scheduler: Optional[str] = SCHEDULER,
    cluster_file: Optional[Path] = CLUSTER,
    verbose: bool = typer.Option(True, help="log progress"),
) -> None:
    """Train one XGBoost model per property and representation on all labelled GBs (xgboost.dask)."""
    from gbdist.cluster import dask_client
    from gbdist.train import train_models

    _setup_logging(verbose)
    with _user_errors():
        _, reps, props, eps = _learning_inputs(store, labels, prop, eps)
        with dask_client(_cluster_config(workers, scheduler, cluster_file)) as client:
            records = train_models(client, store, reps, props, out, eps, _model_params(class_weight), seed)
    table = Table("property", "representation", "model", "rounds", "CV score", title=f"gbdist learn: {out}")
    for r in records:
        table.add_row(r["property"], r["representation"], r["model"], str(r["n_rounds"]),
                      f"{r['cv_metric']} {r['cv_score']:.4g}")
    console.print(table)


@app.command()
def explain(
    store: str = typer.Option(..., "--store", help="store with a finished LAE run"),
    labels: str = typer.Option(..., "--labels", help=_LABELS_HELP),
    prop: str = typer.Option(..., "--property", help="property column"),
    klass: Optional[int] = typer.Option(None, "--class", help="explain this class against the rest"),
    top: int = typer.Option(10, help="how many unique LAEs to show"),
    out: Path = typer.Option(Path("explain"), "--out", help="output folder"),
    eps: Optional[float] = typer.Option(None, help="LAE run of this eps (default: the store's default)"),
    seed: int = typer.Option(0, help="seed of the CV folds and booster"),
    verbose: bool = typer.Option(True, help="log progress"),
) -> None:
    """Which unique LAEs decide a property: ranked, traced to real atoms, drawn and saved as extxyz."""
    from gbdist.building_blocks import explain as explain_property
    from gbdist.labels import align_labels, load_labels
    from gbdist.store import open_store

    _setup_logging(verbose)
    with _user_errors():
        gb_ids = open_store(store)["gb/id"][:]
        (target,) = align_labels(load_labels(labels), gb_ids, [prop])
        entries = explain_property(store, target, out, klass, top, eps, seed)
    table = Table("rank", "LAE", "gain", "GB", "atom", "GBs", "hcp", title=f"building blocks: {prop}"
                  + (f" = {klass} vs rest" if klass is not None else ""))
    for e in entries:
        table.add_row(str(e["rank"]), str(e["lae"]), f"{e['gain']:.3g}", e["gb"], str(e["atom"]),
                      str(e["gbs_containing"]), f"{e['hcp_fraction']:.2f}" if "hcp_fraction" in e else "–")
    console.print(table)
    console.print(f"report: {out / 'report.md'}")
    if any("error" in e for e in entries):
        console.print("[yellow]some LAEs could not be drawn; see the report[/yellow]")


@app.command()
def generate(
    out: Path = typer.Option(Path("generated"), "--out", help="output folder (dumps, labels.csv, energies.png)"),
    element: str = typer.Option("Ni", help="fcc element (EMT)"),
    max_index: int = typer.Option(7, help="largest Miller index of the boundary planes"),
    max_period: float = typer.Option(25.0, help="largest in-plane CSL period, Å"),
    limit: Optional[int] = typer.Option(None, help="at most this many boundaries (lowest Σ first)"),
    workers: Optional[int] = WORKERS,
    scheduler: Optional[str] = SCHEDULER,
    cluster_file: Optional[Path] = CLUSTER,
    verbose: bool = typer.Option(True, help="log progress"),
) -> None:
    """Build and relax (EMT) symmetric tilt grain boundaries; write dumps, labels and an energy plot."""
    from gbdist.cluster import dask_client
    from gbdist.datasets.generate import GenerateParams
    from gbdist.datasets.tilt_set import generate_dataset

    _setup_logging(verbose)
    with _user_errors():
        params = GenerateParams(element=element, max_index=max_index, max_period=max_period, limit=limit)
        with dask_client(_cluster_config(workers, scheduler, cluster_file)) as client:
            table = generate_dataset(client, params, out)
    console.print(f"{len(table)} boundaries in {out}/ (energies {table['energy'].min():.3f}–"
                  f"{table['energy'].max():.3f} J/m²; plot: {out / 'energies.png'})")


@app.command()
def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", help="output folder"),
    workers: Optional[int] = WORKERS,
    verbose: bool = typer.Option(True, help="log progress"),
) -> None:
    """The embedded default: build and relax Ni boundaries, then soap → lae → learn → explain."""
    from gbdist.demo import run_demo

    _setup_logging(verbose)
    with _user_errors():
        report = run_demo(out, _cluster_config(workers, None))
    table = Table(title="gbdist demo", show_header=False)
    table.add_row("boundaries", f"{report.n_boundaries} (EMT-relaxed Ni symmetric tilt GBs)")
    table.add_row("GB energies", f"{report.energy_range[0]:.3f}–{report.energy_range[1]:.3f} J/m²; "
                                 f"Σ3 coherent twin {report.twin_energy:.3f} J/m²")
    table.add_row("LAEs / unique LAEs", f"{report.n_lae} / {report.n_unique}")
    for rep, (mean, std) in report.scores.items():
        table.add_row(f"held-out energy score, {rep}", f"{mean:.1f} ± {std:.1f} % ({report.n_splits} splits)")
    table.add_row("wall", f"{report.wall_s:.0f} s")
    console.print(table)
    console.print(f"report: {out / 'report.md'}")
    if report.failures:
        console.print(f"[red]{report.failures} structure(s) failed[/red]; see the log")
        raise typer.Exit(1)


@app.command()
def fetch(
    dataset: str = typer.Argument(..., help="data set name: olmsted"),
    dest: Path = typer.Argument(..., help="folder to lay the data out in"),
    only: Optional[list[int]] = typer.Option(None, "--only", help="just these dump numbers (repeatable)"),
    base_url: str = typer.Option("https://raw.githubusercontent.com", help="mirror of GitHub's raw files"),
    verbose: bool = typer.Option(True, help="log progress"),
) -> None:
    """Download a public data set from pinned sources, check every sha256, lay it out for gbdist."""
    from gbdist.datasets.olmsted_fetch import fetch_olmsted

    _setup_logging(verbose)
    if dataset != "olmsted":
        console.print(f"[red]error:[/red] unknown data set {dataset!r} (known: olmsted)")
        raise typer.Exit(2)
    with _user_errors():
        written = fetch_olmsted(dest, base_url, only or None)
    console.print(f"{len(written)} files checked and in place under {dest}/")


@app.command()
def bench(
    bench_file: Optional[Path] = typer.Argument(None, help="bench file (jobs/bench-*.yaml); default: "
                                                "the Olmsted dumps in ../shared, no scale-up"),
    out: Path = typer.Option(Path("out/bench"), "--out", help="output folder (stores, bench.json, bench.md)"),
    scale: Optional[int] = typer.Option(None, help="synthetic scale-up factor (overrides the file; 0: none)"),
    verbose: bool = typer.Option(True, help="log progress"),
) -> None:
    """Measure every stage: wall, CPU, rows/s, peak RSS per worker; speed-up; SOAP efficiency; scale-up."""
    from gbdist.bench import load_bench, run_bench

    _setup_logging(verbose)
    with _user_errors():
        config = load_bench(bench_file)
        if scale is not None:
            config.scale = scale
        result = run_bench(config, out)
    typer.echo((out / "bench.md").read_text())
    console.print(f"bench figures in {out}/bench.json ({len(result['summary'])} figures)")


@app.command("job-script")
def job_script(cluster_file: Path = typer.Argument(..., help="cluster file with a jobqueue section")) -> None:
    """Print the SLURM/PBS script that each worker job of a cluster file is submitted with."""
    from gbdist.cluster import job_script as render, load_cluster

    with _user_errors():
        config = load_cluster(cluster_file)
        if config.jobqueue is None:
            raise GbdistError(f"{cluster_file}: no jobqueue section (workers here or a scheduler address)")
        typer.echo(render(config.jobqueue))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
