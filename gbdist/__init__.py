"""gbdist: learn grain-boundary properties from atomistic structures at scale.

Implements Rosenbrock, Homer, Csányi & Hart, npj Comput. Mater. 3:29 (2017) as a
distributed job: per-atom SOAP (dscribe) in a chunked Zarr store, unique local atomic
environments (FAISS), and XGBoost models on the ASR / LER.

The public API (imported on first use, so ``import gbdist`` stays light)::

    import gbdist
    ds = gbdist.open_store("out/olmsted.zarr")            # lazy xarray.Dataset
    atoms = gbdist.structure_atoms("out/olmsted.zarr", "ni.p1")  # one boundary, from the store
    job = gbdist.load_job("jobs/olmsted.yaml"); gbdist.run_job(job)
    gbdist.evaluate_store("out/olmsted.zarr", "olmsted", "out/table1", gbdist.EvaluateOptions(splits=10))

Layout, imports running one way: ``io`` and ``compute`` (kernels) → ``store`` →
``stages`` / ``learning`` / ``explain`` / ``datasets`` → ``workflows`` → ``cli``.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "open_store": "gbdist.store.dataset",
    "structure_atoms": "gbdist.store.structures",
    "read_structure": "gbdist.io.read",
    "ReadParams": "gbdist.io.read",
    "Structure": "gbdist.structure",
    "SelectParams": "gbdist.compute.select",
    "select_gb_region": "gbdist.compute.select",
    "SoapParams": "gbdist.compute.soap",
    "ClusterConfig": "gbdist.stages.client",
    "JobConfig": "gbdist.workflows.job",
    "load_job": "gbdist.workflows.job",
    "run_job": "gbdist.workflows.job",
    "LaeOptions": "gbdist.workflows.lae",
    "find_laes": "gbdist.workflows.lae",
    "load_labels": "gbdist.learning.labels",
    "EvaluateOptions": "gbdist.workflows.learning",
    "evaluate_store": "gbdist.workflows.learning",
    "CurveOptions": "gbdist.workflows.learning",
    "curve_store": "gbdist.workflows.learning",
    "LearnOptions": "gbdist.workflows.learning",
    "train_store": "gbdist.workflows.learning",
    "ExplainOptions": "gbdist.workflows.learning",
    "explain_store": "gbdist.workflows.learning",
    "PredictOptions": "gbdist.workflows.predict",
    "predict_structures": "gbdist.workflows.predict",
    "load_bundle": "gbdist.learning.bundle",
    "MapOptions": "gbdist.workflows.map",
    "map_store": "gbdist.workflows.map",
    "run_demo": "gbdist.workflows.demo",
    "GbdistError": "gbdist.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gbdist' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
