"""Kernels: pure functions of arrays and parameters, with no Dask and no Zarr.

``cna`` (common-neighbour classes), ``select`` (which atoms are the boundary's LAEs),
``soap`` (dscribe SOAP rows), ``asr`` (per-GB sums and means of SOAP rows) and ``leaders``
(greedy leader clustering of unit SOAP vectors with FAISS: the unique LAEs and the LER).
"""
