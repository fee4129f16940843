"""The command line: ``gbdist run JOB.yaml`` and one command per stage. It only parses and calls."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import numpy as np
import typer
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
        console.print(f"[red]failed[/red] {f['error']}")


def _lae_rows(table, lae) -> None:
    table.add_row("unique LAEs", f"{lae.n_unique} at eps {lae.eps} ({lae.n_orphan_leaders} from the orphan pass)")
    table.add_row("LAE wall", f"{lae.wall_s:.1f} s; peak RSS {lae.peak_rss_gib:.2f} GiB (driver + workers)")


def _cluster_config(workers, scheduler):
    """ClusterConfig from the --workers / --scheduler options (defaults where not given)."""
    from gbdist.cluster import ClusterConfig

    return ClusterConfig(**({"scheduler": scheduler} | ({"workers": workers} if workers else {})))


@contextmanager
def _user_errors():
    """Turn errors a user can act on (bad input, store, job file) into a message and exit code 2."""
    from pydantic import ValidationError

    try:
        yield
    except (GbdistError, ValidationError) as err:
        console.print(f"[red]error:[/red] {err}")
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
        verbose: bool = typer.Option(True, help="log progress")) -> None:
    """Run the stages of a job file."""
    from gbdist.config import load_job

    _setup_logging(verbose)
    with _user_errors():
        job = load_job(job_file)
    _run(job)


@app.command()
def soap(
    inputs: list[str] = typer.Argument(..., help="structure files, directories or glob patterns"),
    store: str = typer.Option(..., "--store", help="Zarr store path or fsspec URL"),
    workers: Optional[int] = typer.Option(None, help="local worker processes (default: all cores)"),
    scheduler: Optional[str] = typer.Option(None, help="address of a running Dask scheduler"),
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
            chunk_rows=chunk_rows, cluster=_cluster_config(workers, scheduler), stages=["soap", "asr"],
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
    workers: Optional[int] = typer.Option(None, help="local worker processes (default: all cores)"),
    scheduler: Optional[str] = typer.Option(None, help="address of a running Dask scheduler"),
    partitions: Optional[int] = typer.Option(None, help="discovery partitions (default: 2 per worker thread)"),
    verbose: bool = typer.Option(True, help="log progress"),
) -> None:
    """Find the unique local atomic environments, label every LAE and write the LER."""
    import time

    from gbdist.cluster import dask_client
    from gbdist.stages.lae import run_lae_stage, run_lae_sweep

    _setup_logging(verbose)
    cluster = _cluster_config(workers, scheduler)
    t0 = time.perf_counter()
    with _user_errors(), dask_client(cluster) as client:
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


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
