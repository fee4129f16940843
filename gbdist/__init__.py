"""gbdist: learn grain-boundary properties from atomistic structures at scale.

Implements Rosenbrock, Homer, Csányi & Hart, npj Comput. Mater. 3:29 (2017) as a
distributed job: per-atom SOAP (dscribe) in a chunked Zarr store, unique local atomic
environments (FAISS), and XGBoost models on the ASR / LER.
"""

__version__ = "0.1.0"
SCHEMA_VERSION = 1
