"""The command line: the thin face of :mod:`gbdist.workflows`. Each command parses its options
into the workflow's option model (whose defaults and bounds it shows), calls one workflow
function and renders what it returns. Input mistakes end with a message and exit code 2."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gbdist.compute.select import SelectParams
from gbdist.compute.soap import SoapParams
from gbdist.datasets.generate import GenerateParams
from gbdist.datasets.polycrystal import PolycrystalParams
from gbdist.errors import GbdistError
from gbdist.io import ReadParams
from gbdist.learning.sites import SiteModelParams
from gbdist.stages.soap import SoapStageParams
from gbdist.workflows.lae import LaeOptions
from gbdist.workflows.learning import CurveOptions, EvaluateOptions, ExplainOptions, LearnOptions
from gbdist.workflows.map import MapOptions
from gbdist.workflows.predict import PredictOptions
from gbdist.workflows.sites import SiteEnergyOptions, SiteModelOptions

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Learn grain-boundary properties from atomistic structures, at scale.")
console = Console(stderr=True)

# option names on the command line where they differ from the model's field names
_FLAGS = {"klass": "--class", "properties": "--property", "representations": "--representation",
          "property": "--property", "features": "--features", "backend": "--soap-backend"}


def _flag(field: str) -> str:
    return _FLAGS.get(field, "--" + field.replace("_", "-"))


def _option(model: type[BaseModel], field: str, *flags: str, help: str | None = None):
    """A typer option whose default and help come from ``model``'s field (one copy of each default)."""
    info = model.model_fields[field]
    default = info.get_default(call_default_factory=True)
    return typer.Option(default, *flags, help=help or info.description)


def _setup_logging(verbose: bool) -> None:
    import distributed  # noqa: F401  (it configures its loggers on import; quieten them after)

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("gbdist").setLevel(logging.INFO)
    logging.getLogger("distributed").setLevel(logging.ERROR)


def _validation_message(err: ValidationError) -> str:
    """One line per problem, each naming the command-line option."""
    problems = []
    for e in err.errors():
        names = [part for part in e["loc"] if isinstance(part, str)]
        where = _flag(names[-1]) if names else "options"
        problems.append(f"{where}: {e['msg']}" + (f" (got {e['input']!r})" if "input" in e and names else ""))
    return "; ".join(problems)


@contextmanager
def _user_errors():
    """Turn errors a user can act on (bad input, option, store, job file) into a message and exit code 2;
    a task the cluster could not run (worker killed, cluster stalled) into a message and exit code 1."""
    from gbdist.stages.watchdog import TaskFailed

    try:
        yield
    except TaskFailed as err:  # the input was fine; the cluster could not run a task
        console.print(f"[red]failed:[/red] {escape(str(err))}")
        raise typer.Exit(1) from None
    except GbdistError as err:
        console.print(f"[red]error:[/red] {escape(str(err))}")
        raise typer.Exit(2) from None
    except ValidationError as err:
        console.print(f"[red]error:[/red] {escape(_validation_message(err))}")
        raise typer.Exit(2) from None


WORKERS = typer.Option(None, help="local worker processes (default: all cores)")
SCHEDULER = typer.Option(None, help="address of a running Dask scheduler")
CLUSTER = typer.Option(None, "--cluster", help="cluster file (YAML): local workers, a scheduler address, "
                       "or SLURM/PBS batch jobs through dask-jobqueue (examples in deploy/)")
VERBOSE = typer.Option(True, help="log progress")
LABELS = typer.Option(..., "--labels", help="labels CSV (id column + property columns), a folder in the "
                      "Olmsted layout, or 'olmsted' for the Olmsted Table I labels in ../shared")
EPS_HELP = "LER of the LAE run at this eps (default: the store's chosen eps)"


def _cluster_config(workers, scheduler, cluster_file=None, **memory):
    """ClusterConfig from a --cluster file, or from --workers / --scheduler (defaults where not given);
    ``memory``: memory_limit / task_memory given on the command line (None: not given)."""
    from gbdist.stages.client import ClusterConfig, load_cluster

    memory = {k: v for k, v in memory.items() if v is not None}
    if cluster_file is not None:
        if workers is not None or scheduler:
            raise GbdistError("give --cluster, or --workers / --scheduler, not both")
        config = load_cluster(cluster_file)
        return config.model_validate(config.model_dump() | memory) if memory else config
    return ClusterConfig(**({"scheduler": scheduler} | ({"workers": workers} if workers is not None else {}) | memory))


def _alloy(items: list[str]) -> dict[str, float]:
    """{element: fraction} from --alloy ELEMENT:FRACTION options."""
    fractions = {}
    for item in items:
        element, _, fraction = item.partition(":")
        try:
            fractions[element] = float(fraction)
        except ValueError:
            raise GbdistError(f"--alloy {item!r}: give ELEMENT:FRACTION, e.g. Cu:0.3") from None
    return fractions


ALLOY = typer.Option([], "--alloy", help="ELEMENT:FRACTION substituted at random, e.g. Cu:0.3 (repeat for more "
                     "elements)")


# ---------------------------------------------------------------- rendering
def _print_job(report) -> None:
    soap = report.soap
    table = Table(title=f"gbdist: {report.store}", show_header=False)
    if soap:
        table.add_row("grain boundaries", f"{soap.n_gb}")
        table.add_row("LAEs (rows)", f"{soap.n_lae} ({100 * soap.selected_share:.1f}% of the atoms)")
        if soap.structures:
            table.add_row("lattice · rule", ", ".join(f"{kind}: {n}" for kind, n in soap.structures.items()))
        table.add_row("SOAP features", f"{soap.n_features}")
        table.add_row("chunks computed", f"{soap.chunks_computed} of {soap.chunks_total}")
        if soap.chunks_computed:
            table.add_row("select wall", f"{soap.select_wall_s:.1f} s")
            table.add_row("SOAP wall", f"{soap.soap_wall_s:.1f} s")
            table.add_row("SOAP efficiency", f"{soap.efficiency:.3f} (kernel CPU-s {soap.kernel_cpu_s:.1f} "
                                             f"÷ wall × {soap.worker_threads} worker threads)")
            table.add_row("peak RSS per worker", " · ".join(f"{b / 2**30:.2f} GiB" for b in soap.peak_rss.values())
                          + " (SOAP tasks)")
    if report.asr_wall_s:
        table.add_row("ASR wall", f"{report.asr_wall_s:.1f} s")
    if report.lae:
        _lae_rows(table, report.lae)
    if report.skipped:
        done = " (already done)" if report.soap and not report.failures else ""
        table.add_row("not run", ", ".join(report.skipped) + done)
    table.add_row("total wall", f"{report.wall_s:.1f} s")
    table.add_row("failures", f"{len(report.failures)}")
    console.print(table)
    for f in report.failures:
        console.print(f"[red]failed[/red] {escape(f['error'])}")
    if report.failures:
        console.print(f"[red]{len(report.failures)} failure(s)[/red]; the other structures finished.")


def _lae_rows(table, lae) -> None:
    chosen = "the store's chosen eps" if lae.chosen else "not the store's chosen eps (use --choose)"
    orphans = f" ({lae.n_orphan_leaders} from the orphan pass)" if lae.n_orphan_leaders else ""
    table.add_row("unique LAEs", f"{lae.n_unique} at eps {lae.eps:.4f}{orphans}")
    if lae.seeds:
        table.add_row("seeds", ", ".join(f"{s['lattice']} {s['host'] or ''} a = {s['a']} Å" if s["a"] is not None
                                         else "fcc at ASE's reference a (a store before structure types)"
                                         for s in lae.seeds))
    table.add_row("eps", chosen)
    table.add_row("LAE wall", f"{lae.wall_s:.1f} s, {lae.soap_passes:.2f} reads of soap; "
                  f"peak RSS {lae.peak_rss_gib:.2f} GiB (driver + workers)")


def _eps_note(eps: float | None) -> str:
    return f"LER at eps {eps:.4f}" if eps is not None else "no LER"


def _print_predictions(result) -> None:
    p = result.predictions
    table = Table(title=f"gbdist predict: {result.out}", show_header=False)
    table.add_row("boundaries", f"{len(p)} ({int(p['in_domain'].sum())} in domain)")
    table.add_row("LAEs", f"{int(p['n_lae'].sum())}")
    table.add_row("novel fraction", f"min {p['novel_fraction'].min():.4f} · median {p['novel_fraction'].median():.4f}"
                                    f" · max {p['novel_fraction'].max():.4f}")
    table.add_row("new candidate LAEs", str(len(result.candidates)))
    for prop, cells in result.scores.items():
        table.add_row(f"score, {prop}", " · ".join(f"{rep} {c['score']:.1f}" for rep, c in cells.items()))
    table.add_row("wall", f"{result.wall_s:.1f} s")
    console.print(table)
    for f in result.failures:
        console.print(f"[red]failed[/red] {escape(f['error'])}")
    console.print(f"predictions: {result.out / 'predictions.csv'}; report: {result.out / 'report.md'}")


# ---------------------------------------------------------------- commands
def _run(job) -> None:
    from gbdist.workflows.job import run_job

    with _user_errors():
        report = run_job(job)
    _print_job(report)
    if report.failures:
        raise typer.Exit(1)


@app.command()
def run(job_file: Path = typer.Argument(..., help="job file (YAML)"),
        cluster_file: Optional[Path] = CLUSTER,
        soap_backend: Optional[str] = typer.Option(None, "--soap-backend",
                                                   help="dscribe or featomic, instead of the job's soap.backend"),
        verbose: bool = VERBOSE) -> None:
    """Run the stages of a job file (on the cluster of --cluster, if given, instead of the job's)."""
    from gbdist.workflows.job import load_job

    _setup_logging(verbose)
    with _user_errors():
        job = load_job(job_file)
        if cluster_file is not None:
            job.cluster = _cluster_config(None, None, cluster_file)
        if soap_backend is not None:
            job = _with_backend(job, soap_backend)
    _run(job)


def _with_backend(job, backend: str):
    """The job with ``soap.backend`` set (validated: a bad name exits 2 naming --soap-backend)."""
    return job.model_copy(update={"soap": SoapParams(**(job.soap.model_dump() | {"backend": backend}))})


@app.command()
def soap(
    inputs: list[str] = typer.Argument(..., help="structure files, directories or glob patterns"),
    store: str = typer.Option(..., "--store", help="Zarr store path or fsspec URL"),
    workers: Optional[int] = WORKERS, scheduler: Optional[str] = SCHEDULER, cluster_file: Optional[Path] = CLUSTER,
    element: Optional[str] = _option(ReadParams, "element", help="element of every atom of a dump that has no element "
                                     "column (no default: such a dump needs it)"),
    pad: float = _option(SelectParams, "pad"),
    normal: str = _option(SelectParams, "normal", help="GB normal axis: auto (the open axis), x, y or z"),
    rule: str = _option(SelectParams, "rule", help="region rule: auto (extent for one open axis, else distance), "
                        "extent (the paper's: the core's extent along the normal + pad) or distance (within pad of "
                        "a core atom)"),
    lattice: str = _option(SelectParams, "lattice", help="bulk lattice: auto (the most common type), fcc, bcc or hcp"),
    type_column: Optional[str] = _option(SelectParams, "type_column", help="per-atom structure-type column of the "
                                         "files (e.g. c_cna), read under --type-convention [default: computed by PTM]"),
    type_convention: Optional[str] = _option(SelectParams, "type_convention", help="how to read --type-column: lammps "
                                             "(cna/atom: 1 fcc 2 hcp 3 bcc 4 ico 5 other), ovito (0 other 1 fcc 2 hcp "
                                             "3 bcc 4 ico 5 sc) or gbdist"),
    r_cut: float = _option(SoapParams, "r_cut", help="SOAP cutoff, Å"),
    n_max: int = _option(SoapParams, "n_max", help="SOAP radial basis size"),
    l_max: int = _option(SoapParams, "l_max", help="SOAP maximum angular degree"),
    sigma: float = _option(SoapParams, "sigma", help="SOAP Gaussian width, Å"),
    soap_backend: str = _option(SoapParams, "backend", "--soap-backend", help="SOAP code: dscribe or featomic"),
    soap_compression: str = _option(SoapParams, "compression", "--soap-compression"),
    chunk_rows: int = _option(SoapStageParams, "chunk_rows"),
    memory_limit: Optional[str] = typer.Option(None, help="memory limit of each local worker, e.g. 8GiB [default: 4GiB]"),
    task_memory: Optional[str] = typer.Option(None, help="memory one SOAP task may use, e.g. 1GiB [default: a quarter "
                                              "of the worker's memory limit]"),
    verbose: bool = VERBOSE,
) -> None:
    """Select the GB atoms of INPUTS, compute their SOAP vectors into the store, then the ASR."""
    from gbdist.workflows.job import JobConfig

    _setup_logging(verbose)
    with _user_errors():
        select = {"pad": pad, "normal": normal, "rule": rule, "lattice": lattice, "type_column": type_column,
                  "type_convention": type_convention}
        job = JobConfig(store=store, inputs=inputs, read={"element": element}, select=select,
                        soap={"r_cut": r_cut, "n_max": n_max, "l_max": l_max, "sigma": sigma, "backend": soap_backend,
                              "compression": soap_compression},
                        chunk_rows=chunk_rows,
                        cluster=_cluster_config(workers, scheduler, cluster_file, memory_limit=memory_limit,
                                                task_memory=task_memory), stages=["soap", "asr"])
    _run(job)


@app.command()
def lae(
    store: str = typer.Option(..., "--store", help="store with a finished soap stage"),
    eps: float = _option(LaeOptions, "eps"),
    choose: bool = _option(LaeOptions, "choose", "--choose"),
    sweep: Optional[str] = typer.Option(None, help="START:STOP:STEP: count unique LAEs per eps, save a PNG "
                                        "(the store's LAE results and chosen eps are left as they are)"),
    out: Path = typer.Option(Path("lae-sweep.png"), help="PNG of the sweep"),
    workers: Optional[int] = WORKERS, scheduler: Optional[str] = SCHEDULER, cluster_file: Optional[Path] = CLUSTER,
    verbose: bool = VERBOSE,
) -> None:
    """Find the unique local atomic environments, label every LAE and write the LER."""
    from gbdist.workflows.lae import SweepOptions, find_laes, parse_sweep, sweep_laes

    _setup_logging(verbose)
    with _user_errors():
        cluster = _cluster_config(workers, scheduler, cluster_file)
        if sweep:
            try:
                values = parse_sweep(sweep)
            except ValueError as err:
                raise GbdistError(f"--sweep {sweep}: {err}") from None
            result = sweep_laes(store, SweepOptions(eps=values), out, cluster)
        else:
            report = find_laes(store, LaeOptions(eps=eps, choose=choose), cluster)
    if sweep:
        table = Table("eps", "unique LAEs", title=f"unique LAEs against eps ({store})")
        for e, n in zip(result.eps, result.counts):
            table.add_row(f"{e:.4f}" + ("  ← knee" if e == result.knee else ""), str(n))
        console.print(table)
        console.print(f"knee of the curve: eps = {result.knee:.4f}; curve saved to {result.png}")
        return
    table = Table(title=f"gbdist lae: {store}", show_header=False)
    table.add_row("rows", str(report.n_rows))
    _lae_rows(table, report)
    table.add_row("results in", report.group)
    console.print(table)


@app.command()
def evaluate(
    store: str = typer.Option(..., "--store", help="store with ASR (and LER) computed"),
    labels: str = LABELS,
    out: Path = typer.Option(Path("table1"), "--out", help="output folder"),
    prop: Optional[list[str]] = _option(EvaluateOptions, "properties", "--property"),
    representation: Optional[list[str]] = _option(EvaluateOptions, "representations", "--representation"),
    features: Optional[list[str]] = _option(EvaluateOptions, "features", "--features"),
    splits: int = _option(EvaluateOptions, "splits"),
    seed: int = _option(EvaluateOptions, "seed"),
    eps: Optional[float] = _option(EvaluateOptions, "eps"),
    class_weight: str = _option(EvaluateOptions, "class_weight"),
    workers: Optional[int] = WORKERS, scheduler: Optional[str] = SCHEDULER, cluster_file: Optional[Path] = CLUSTER,
    verbose: bool = VERBOSE,
) -> None:
    """The paper's Table I protocol: random 50/50 splits, tune + fit on one half, score the other."""
    from gbdist.workflows.learning import evaluate_store

    _setup_logging(verbose)
    with _user_errors():
        options = EvaluateOptions(properties=prop or None, representations=representation or None,
                                  features=features or [], splits=splits, seed=seed, eps=eps, class_weight=class_weight)
        result = evaluate_store(store, labels, out, options, _cluster_config(workers, scheduler, cluster_file))
    typer.echo(result.markdown)
    console.print(f"Table I in {out}/ ({splits} splits, {_eps_note(result.info['ler_eps'])}, "
                  f"{result.info['wall_s']:.1f} s)")


@app.command()
def curve(
    store: str = typer.Option(..., "--store", help="store with ASR (and LER) computed"),
    labels: str = LABELS,
    prop: str = _option(CurveOptions, "property", "--property"),
    out: Path = typer.Option(Path("table1"), "--out", help="output folder"),
    fractions: str = typer.Option(",".join(map(str, CurveOptions.model_fields["fractions"].default)),
                                  help="training fractions, comma-separated, each in (0, 1)"),
    fits: int = _option(CurveOptions, "fits"),
    seed: int = _option(CurveOptions, "seed"),
    eps: Optional[float] = _option(CurveOptions, "eps"),
    workers: Optional[int] = WORKERS, scheduler: Optional[str] = SCHEDULER, cluster_file: Optional[Path] = CLUSTER,
    verbose: bool = VERBOSE,
) -> None:
    """Learning curve (the paper's Fig. 3): held-out score against the training fraction."""
    from gbdist.workflows.learning import curve_store

    _setup_logging(verbose)
    with _user_errors():
        try:
            fraction_list = [float(v) for v in fractions.split(",")]
        except ValueError:
            raise GbdistError(f"--fractions {fractions}: comma-separated numbers, e.g. 0.1,0.3,0.5") from None
        options = CurveOptions(property=prop, fractions=fraction_list, fits=fits, seed=seed, eps=eps)
        rows, used_eps = curve_store(store, labels, out, options, _cluster_config(workers, scheduler, cluster_file))
    balanced = "balanced_mean" in rows[0]
    table = Table("representation", "fraction", "training GBs", "score", *(["balanced accuracy"] if balanced else []),
                  title=f"learning curve: {prop}")
    for r in rows:
        table.add_row(r["representation"], f"{r['fraction']:.2f}", str(r["n_train"]), f"{r['mean']:.1f} ± {r['std']:.1f}",
                      *([f"{r['balanced_mean']:.1f} ± {r['balanced_std']:.1f}"] if balanced else []))
    console.print(table)
    console.print(f"curve in {out}/curve_{prop}.csv and .png ({_eps_note(used_eps)})")


@app.command()
def learn(
    store: str = typer.Option(..., "--store", help="store with ASR (and LER) computed"),
    labels: str = LABELS,
    out: Path = typer.Option(Path("models"), "--out", help="output folder for the models"),
    prop: Optional[list[str]] = _option(LearnOptions, "properties", "--property"),
    seed: int = _option(LearnOptions, "seed"),
    eps: Optional[float] = _option(LearnOptions, "eps"),
    class_weight: str = _option(LearnOptions, "class_weight"),
    workers: Optional[int] = WORKERS, scheduler: Optional[str] = SCHEDULER, cluster_file: Optional[Path] = CLUSTER,
    verbose: bool = VERBOSE,
) -> None:
    """Train one XGBoost model per property and representation on all labelled GBs (xgboost.dask)."""
    from gbdist.workflows.learning import train_store

    _setup_logging(verbose)
    with _user_errors():
        options = LearnOptions(properties=prop or None, seed=seed, eps=eps, class_weight=class_weight)
        records = train_store(store, labels, out, options, _cluster_config(workers, scheduler, cluster_file))
    table = Table("property", "representation", "model", "rounds", "CV score", "LER eps", title=f"gbdist learn: {out}")
    for r in records:
        table.add_row(r["property"], r["representation"], r["model"], str(r["n_rounds"]),
                      f"{r['cv_metric']} {r['cv_score']:.4g}", f"{r['ler_eps']:.4f}" if r["ler_eps"] else "–")
    console.print(table)


@app.command()
def explain(
    store: str = typer.Option(..., "--store", help="store with a finished LAE run"),
    labels: str = LABELS,
    prop: str = typer.Option(..., "--property", help="property column"),
    klass: Optional[int] = _option(ExplainOptions, "klass", "--class"),
    top: int = _option(ExplainOptions, "top"),
    out: Path = typer.Option(Path("explain"), "--out", help="output folder"),
    eps: Optional[float] = _option(ExplainOptions, "eps", help="LAE run of this eps (default: the store's chosen eps)"),
    seed: int = _option(ExplainOptions, "seed"),
    verbose: bool = VERBOSE,
) -> None:
    """Which unique LAEs decide a property: ranked, traced to real atoms, drawn and saved as extxyz."""
    from gbdist.workflows.learning import explain_store

    _setup_logging(verbose)
    with _user_errors():
        options = ExplainOptions(property=prop, klass=klass, top=top, eps=eps, seed=seed)
        result = explain_store(store, labels, out, options)
    what = f"{prop}" + (f" = {klass} vs rest" if klass is not None else "")
    table = Table("rank", "LAE", "gain", "GB", "atom", "GBs", "hcp",
                  title=f"building blocks: {what} (unique LAEs at eps {result.eps:.4f})")
    for e in result.entries:
        table.add_row(str(e["rank"]), str(e["lae"]), f"{e['gain']:.3g}", e["gb"], str(e["atom"]),
                      str(e["gbs_containing"]), f"{e['hcp_fraction']:.2f}" if "hcp_fraction" in e else "–")
    console.print(table)
    console.print(f"report: {result.report}")
    if any("error" in e for e in result.entries):
        console.print("[yellow]some LAEs could not be drawn; see the report[/yellow]")


@app.command()
def predict(
    bundle: Path = typer.Argument(..., help="model bundle: the folder `gbdist learn --out` wrote"),
    inputs: Optional[list[str]] = typer.Argument(None, help="structure files, directories or glob patterns"),
    out: Path = typer.Option(Path("predictions"), "--out", help="output folder (store, predictions.csv, report.md)"),
    store: Optional[str] = typer.Option(None, "--store", help="a store already computed with the bundle's "
                                        "parameters, instead of INPUT files"),
    labels: Optional[str] = _option(PredictOptions, "labels", "--labels"),
    annotate: bool = _option(PredictOptions, "annotate", "--annotate"),
    workers: Optional[int] = WORKERS, scheduler: Optional[str] = SCHEDULER, cluster_file: Optional[Path] = CLUSTER,
    verbose: bool = VERBOSE,
) -> None:
    """Predict new boundaries with a model bundle: SOAP with its parameters, nearest unique LAEs,
    novel environments and new candidate LAEs, every model's prediction."""
    from gbdist.workflows.predict import predict_structures

    _setup_logging(verbose)
    with _user_errors():
        options = PredictOptions(labels=labels, annotate=annotate)
        result = predict_structures(bundle, inputs or None, out, options,
                                    _cluster_config(workers, scheduler, cluster_file), store)
    _print_predictions(result)
    if result.failures:
        raise typer.Exit(1)


@app.command("site-energy")
def site_energy(
    store: str = typer.Option(..., "--store", help="store with a finished soap stage (it holds the structures)"),
    eam: str = typer.Option(..., "--potential", "--eam", help=SiteEnergyOptions.model_fields["potential"].description),
    out: Path = typer.Option(Path("site-energy"), "--out", help="output folder (boundaries.csv, site_energy.json)"),
    column: str = _option(SiteEnergyOptions, "column", "--column"),
    window: float = _option(SiteEnergyOptions, "window", "--window"),
    labels: Optional[str] = _option(SiteEnergyOptions, "labels", "--labels"),
    prop: str = _option(SiteEnergyOptions, "property", "--property"),
    workers: Optional[int] = WORKERS, scheduler: Optional[str] = SCHEDULER, cluster_file: Optional[Path] = CLUSTER,
    verbose: bool = VERBOSE,
) -> None:
    """Per-atom excess energies (eV, against each structure's own bulk) under an EAM potential or EMT, on
    the workers, into a per-atom column of the store; each boundary's energy as their sum within --window
    of its plane over its area, compared with --labels when given."""
    from gbdist.workflows.sites import site_energies

    _setup_logging(verbose)
    with _user_errors():
        options = SiteEnergyOptions(potential=eam, column=column, window=window, labels=labels, property=prop)
        result = site_energies(store, out, options, _cluster_config(workers, scheduler, cluster_file))
    table, report = result.boundaries, result.report
    console.print(f"site energies of {report.atoms:,} atoms in column {report.column!r}, {report.wall_s:.1f} s; "
                  f"{int(table['energy'].notna().sum())} boundary energies in {out / 'boundaries.csv'}")
    if result.within_2_percent is not None:
        scored = int(table["relative_error"].notna().sum())
        console.print(f"within 2% of the labels: {result.within_2_percent} of {scored}; median |error| "
                      f"{100 * table['relative_error'].abs().median():.2f}%")
    for failure in report.failures:
        console.print(f"[red]{failure['error']}[/red]")
    if report.failures:
        raise typer.Exit(1)


@app.command("site-model")
def site_model_command(
    store: str = typer.Option(..., "--store", help="store with its LAEs and a per-atom column (e.g. from site-energy)"),
    labels: str = typer.Option(..., "--labels", help=SiteModelOptions.model_fields["labels"].description),
    out: Path = typer.Option(Path("site-model"), "--out", help="output folder (report.md, site_model.json, figures)"),
    column: str = _option(SiteModelOptions, "column", "--column"),
    prop: str = _option(SiteModelOptions, "property", "--property"),
    window: float = _option(SiteModelOptions, "window", "--window"),
    splits: int = _option(SiteModelOptions, "splits", "--splits"),
    seed: int = _option(SiteModelOptions, "seed", "--seed"),
    eps: Optional[float] = _option(SiteModelOptions, "eps", "--eps"),
    top: int = _option(SiteModelOptions, "top", "--top"),
    memory: str = typer.Option("workers", "--memory", help=SiteModelParams.model_fields["memory"].description),
    workers: Optional[int] = WORKERS, scheduler: Optional[str] = SCHEDULER, cluster_file: Optional[Path] = CLUSTER,
    verbose: bool = VERBOSE,
) -> None:
    """A per-atom model of --column with xgboost.dask on the SOAP rows, scored with whole boundaries held
    out (Table I's splits): per-atom MAE and R², each test boundary's energy summed from its atoms, the
    additive building-block model, and ASR_area on the same splits; the energy of each unique LAE."""
    from gbdist.workflows.sites import site_model

    _setup_logging(verbose)
    with _user_errors():
        options = SiteModelOptions(column=column, labels=labels, property=prop, window=window, splits=splits,
                                   seed=seed, eps=eps, top=top, model=SiteModelParams(memory=memory))
        result = site_model(store, out, options, _cluster_config(workers, scheduler, cluster_file))
    stats = result.summary["stats"]
    paired = result.summary["site_minus_ASR_area"]
    console.print(f"per atom over {options.splits} splits: MAE {stats['mae_mev']['mean']:.2f} meV, "
                  f"R² {stats['r2']['mean']:.4f}; energy score: summed sites {stats['site']['mean']:.2f}, "
                  f"building blocks {stats['additive']['mean']:.2f}, ASR_area {stats['ASR_area']['mean']:.2f}; "
                  f"site − ASR_area {paired['mean']:+.2f} ± {paired['se']:.2f} (SE); report in {out / 'report.md'}")


@app.command("map")
def map_command(
    store: str = typer.Option(..., "--store", help="store with a finished soap stage"),
    out: Path = typer.Option(Path("map"), "--out", help="output folder (pictures, report.md, map.json)"),
    components: int = _option(MapOptions, "components"),
    solver: str = _option(MapOptions, "solver"),
    eps: Optional[float] = _option(MapOptions, "eps"),
    labels: Optional[str] = _option(MapOptions, "labels", "--labels"),
    prop: Optional[str] = _option(MapOptions, "property", "--property"),
    klass: Optional[int] = _option(MapOptions, "klass", "--class"),
    gb: Optional[list[str]] = _option(MapOptions, "gb", "--gb"),
    onto: Optional[str] = _option(MapOptions, "onto", "--onto"),
    chemiscope: Optional[str] = _option(MapOptions, "chemiscope", "--chemiscope"),
    chemiscope_size: int = _option(MapOptions, "chemiscope_size", "--chemiscope-size"),
    workers: Optional[int] = WORKERS, scheduler: Optional[str] = SCHEDULER, cluster_file: Optional[Path] = CLUSTER,
    verbose: bool = VERBOSE,
) -> None:
    """A map of every LAE: PCA of all SOAP rows (dask-ml), stored, drawn on PC1–PC2 (or, with --onto,
    this store's rows placed on another store's map)."""
    from gbdist.workflows.map import map_store

    _setup_logging(verbose)
    with _user_errors():
        options = MapOptions(components=components, solver=solver, eps=eps, labels=labels, property=prop,
                             klass=klass, gb=gb or [], onto=onto, chemiscope=chemiscope,
                             chemiscope_size=chemiscope_size)
        result = map_store(store, out, options, _cluster_config(workers, scheduler, cluster_file))
    evr = result.pca.explained_variance_ratio
    what = f"placed on the map of {onto}" if onto else f"PCA: {len(evr)} components"
    console.print(f"{what}, PC1–PC3 explain {', '.join(f'{100 * v:.1f}%' for v in evr[:3])}; "
                  f"{result.pca.wall_s:.1f} s, peak RSS per worker {result.pca.peak_rss_gib_per_worker:.2f} GiB")
    console.print(f"{len(result.pictures)} pictures; report: {result.report}")
    if result.chemiscope:
        c = result.chemiscope
        which = f"{c['unique_laes']} unique LAEs" if "unique_laes" in c else f"{c['novel']:,} novel"
        console.print(f"chemiscope: {c['path']}: {c['environments']:,} LAEs ({which}) in {c['structures']} boundary "
                      f"regions of {c['atoms']:,} atoms; {c['bytes'] / 1e6:.1f} MB, {c['wall_s']:.1f} s; "
                      f"properties: {', '.join(c['properties'])}")
        if c["left_out"]:
            console.print(f"[yellow]left out (not every environment has a value): {', '.join(c['left_out'])}[/yellow]")


@app.command()
def generate(
    out: Path = typer.Option(Path("generated"), "--out", help="output folder (dumps, labels.csv, energies.png)"),
    element: str = _option(GenerateParams, "element", help="fcc element (EMT)"),
    max_index: int = _option(GenerateParams, "max_index", help="largest Miller index of the boundary planes"),
    max_period: float = _option(GenerateParams, "max_period"),
    limit: Optional[int] = _option(GenerateParams, "limit"),
    alloy: list[str] = ALLOY,
    workers: Optional[int] = WORKERS, scheduler: Optional[str] = SCHEDULER, cluster_file: Optional[Path] = CLUSTER,
    verbose: bool = VERBOSE,
) -> None:
    """Build and relax (EMT) symmetric tilt grain boundaries; write dumps, labels and an energy plot."""
    from gbdist.workflows.job import generate_boundaries

    _setup_logging(verbose)
    with _user_errors():
        params = GenerateParams(element=element, max_index=max_index, max_period=max_period, limit=limit,
                                alloy=_alloy(alloy))
        table = generate_boundaries(out, params, _cluster_config(workers, scheduler, cluster_file))
    console.print(f"{len(table)} boundaries in {out}/ (energies {table['energy'].min():.3f}–"
                  f"{table['energy'].max():.3f} J/m²; plot: {out / 'energies.png'})")


@app.command()
def polycrystal(
    out: Path = typer.Option(Path("generated/polycrystals"), "--out", help="output folder (one dump per structure)"),
    element: str = _option(PolycrystalParams, "element"),
    lattice: str = _option(PolycrystalParams, "lattice", help="fcc, bcc or hcp"),
    grains: int = _option(PolycrystalParams, "grains", help="Voronoi grains (2: a bicrystal with two flat boundaries "
                          "normal to z)"),
    size: float = _option(PolycrystalParams, "size"),
    alloy: list[str] = ALLOY,
    count: int = typer.Option(1, min=1, help="structures, seeds --seed, --seed + 1, …"),
    seed: int = _option(PolycrystalParams, "seed"),
    verbose: bool = VERBOSE,
) -> None:
    """Build Voronoi polycrystals (or alloys) of any lattice, EMT-relaxed where EMT knows the elements."""
    from gbdist.datasets.polycrystal import write_polycrystal

    _setup_logging(verbose)
    with _user_errors():
        params = PolycrystalParams(element=element, lattice=lattice, grains=grains, size=size, alloy=_alloy(alloy),
                                   seed=seed)
        paths = [write_polycrystal(params.model_copy(update={"seed": seed + k}), out) for k in range(count)]
    console.print("\n".join(str(p) for p in paths))


@app.command()
def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", help="output folder"),
    workers: Optional[int] = WORKERS,
    verbose: bool = VERBOSE,
) -> None:
    """The embedded default: build and relax Ni boundaries, then soap → lae → learn → explain."""
    from gbdist.workflows.demo import run_demo

    _setup_logging(verbose)
    with _user_errors():
        report = run_demo(out, _cluster_config(workers, None))
    table = Table(title="gbdist demo", show_header=False)
    table.add_row("boundaries", f"{report.n_boundaries} (EMT-relaxed Ni symmetric tilt GBs)")
    table.add_row("GB energies", f"{report.energy_range[0]:.3f}–{report.energy_range[1]:.3f} J/m²; "
                                 f"Σ3 coherent twin {report.twin_energy:.3f} J/m²")
    table.add_row("LAEs / unique LAEs", f"{report.n_lae} / {report.n_unique} (eps {report.eps:.4f})")
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
    verbose: bool = VERBOSE,
) -> None:
    """Download a public data set from pinned sources, check every sha256, lay it out for gbdist."""
    from gbdist.datasets.olmsted_fetch import fetch_olmsted

    _setup_logging(verbose)
    with _user_errors():
        if dataset != "olmsted":
            raise GbdistError(f"unknown data set {dataset!r} (known: olmsted)")
        written = fetch_olmsted(dest, base_url, only or None)
    console.print(f"{len(written)} files checked and in place under {dest}/")


@app.command()
def bench(
    bench_file: Optional[Path] = typer.Argument(None, help="bench file (jobs/bench-*.yaml); default: "
                                                "the Olmsted dumps in ../shared, no scale-up"),
    out: Path = typer.Option(Path("out/bench"), "--out", help="output folder (stores, bench.json, bench.md)"),
    scale: Optional[int] = typer.Option(None, min=0, help="synthetic scale-up factor (overrides the file; 0: none)"),
    verbose: bool = VERBOSE,
) -> None:
    """Measure every stage: wall, CPU, rows/s, peak RSS per worker; speed-up; SOAP efficiency; scale-up."""
    from gbdist.tools.bench import load_bench, run_bench

    _setup_logging(verbose)
    with _user_errors():
        config = load_bench(bench_file)
        if scale is not None:
            config.scale = scale
        result = run_bench(config, out)
    typer.echo((out / "bench.md").read_text())
    console.print(f"bench figures in {out}/bench.json ({len(result['summary'])} figures)")


@app.command()
def check(store: str = typer.Option(..., "--store", help="the store to verify"),
          repair: bool = typer.Option(False, "--repair", help="clear the bad chunks and their completion flags, so "
                                      "a rerun of the stage that wrote them recomputes exactly those"),
          verbose: bool = VERBOSE) -> None:
    """Verify every chunk of a store (its checksum and compression); list the bad ones (exit 1), or
    repair them (exit 0) so that a rerun of the stage that wrote them recomputes exactly those."""
    from gbdist.workflows.check import check_store

    _setup_logging(verbose)
    with _user_errors():
        report = check_store(store, repair)
    console.print(f"{store}: {report.n_chunks} chunks in {report.n_arrays} arrays checked, {len(report.bad)} bad")
    for path, index in report.bad:
        console.print(f"[red]bad[/red] array {path}, chunk {index}")
    for line in report.repaired:
        console.print(f"repaired: {line}")
    for line in report.rerun:
        console.print(f"then run: {line}")
    if report.bad and not repair:
        console.print(f"run `gbdist check --store {store} --repair`, then rerun the stage(s) that wrote them")
        raise typer.Exit(1)


@app.command("job-script")
def job_script(cluster_file: Path = typer.Argument(..., help="cluster file with a jobqueue section")) -> None:
    """Print the SLURM/PBS script that each worker job of a cluster file is submitted with."""
    from gbdist.stages.client import job_script as render
    from gbdist.stages.client import load_cluster

    with _user_errors():
        config = load_cluster(cluster_file)
        if config.jobqueue is None:
            raise GbdistError(f"{cluster_file}: no jobqueue section (workers here or a scheduler address)")
        script = render(config.jobqueue)
    typer.echo(script)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
