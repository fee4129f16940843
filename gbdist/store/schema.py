"""The store schema (Zarr v3): every array and group name, completion flags, the chunk plan, the LAE
results per eps and the chosen eps. Other modules use the fixed array names listed below; the
per-eps names are formatted here only. Stores written before structure types lack ``gb/rule`` to
``gb/thickness``: they are fcc bicrystals selected by the extent rule.

One group per job (a local path or any fsspec URL). Arrays, with their dimension names:

=====================  =================  =========  ==============================================
array                  shape              dtype      meaning
=====================  =================  =========  ==============================================
``gb/id``              (gb,)              str        structure id (file name less suffixes)
``gb/source``          (gb,)              str        file the structure was read from (absolute)
``gb/offset``          (gb_edge,)         int64      LAE rows of GB i are ``offset[i]:offset[i+1]``
``gb/n_atoms``         (gb,)              int32      atoms in the source structure
``gb/normal``          (gb,)              int8       boundary-normal axis (0 x, 1 y, 2 z; −1 none)
``gb/extent``          (gb, bound)        float64    Å, the core's extent along the normal (unpadded;
                                                     NaN for the distance rule)
``gb/rule``            (gb,)              str        region rule the structure got (extent, distance)
``gb/lattice``         (gb,)              str        bulk lattice (fcc, bcc, hcp)
``gb/lattice_constant`` (gb,)             float64    Å, a of the bulk, from its first-shell bonds
``gb/host``            (gb,)              str        the bulk's most common element
``gb/thickness``       (gb,)              float64    Å, n_lae / (density × boundary area); NaN where
                                                     the area is not defined (ASR_area refused)
``lae/gb``             (lae,)             int32      row → GB position
``lae/atom``           (lae,)             int64      row → atom id in the source file
``lae/cna``            (lae,)             int8       structure type (1 fcc 2 hcp 3 bcc 4 ico 5 other
                                                     6 sc; LAMMPS cna/atom's codes, PTM's 6 sc)
``lae/soap_norm``      (lae,)             float32    Euclidean norm of the raw dscribe vector
``soap``               (lae, feature)     float32    unit-normalised SOAP rows (raw = soap × norm)
``asr``                (gb, feature)      float32    mean of each GB's ``soap`` rows
``progress/soap``      (soap_chunk,)      uint8      1 once that chunk of ``soap`` is written
``progress/soap_cpu``  (soap_chunk,)      float64    s, SOAP kernel CPU time of that chunk
``partial/asr_gb``     (soap_chunk, touch) int32     GB positions chunk k's rows belong to (−1: none)
``partial/asr_sum``    (soap_chunk, touch, float64   sums of chunk k's unit rows per GB (ASR without
                       feature)                      a pass over ``soap``)
=====================  =================  =========  ==============================================

The unique LAEs found at one eps live in the group ``lae_eps_<eps>`` (eps with 4 decimals,
:func:`lae_group_name`): ``label`` and ``similarity`` (lae,), ``unique/soap`` (unique,
feature), ``unique/source``, ``unique/gb``, ``unique/atom``, ``unique/count`` (unique,),
``ler`` (gb, unique), and after ``gbdist site-model`` the building-block energies
``unique/site/<column>/{count,mean,std}`` (unique,) of a per-atom column.

Every array the stages write carries a ``crc32c`` checksum after its compressor
(:func:`create_store_array`), so a corrupt or truncated chunk fails to decode instead of
being read as other numbers; ``gbdist check`` (:mod:`gbdist.store.check`) finds such chunks.

Group attributes: ``gbdist_version``, ``schema_version``, ``inputs`` (path, id, bytes,
sha256), ``failures``, the ``read`` / ``select`` / ``soap`` parameters, ``species``, and
``stages``: ``{stage: {"done": true, ...}}``, written last, after the stage's data.
``lae_runs``: ``{"<eps>": {"done": true, "n_unique": ..., ...}}``, one record per finished
LAE run; ``lae_chosen``: the eps that later stages use when none is given. The first LAE
run written to a store becomes its chosen eps; after that only an explicit choice (the
job's ``lae.eps``, ``gbdist lae --choose``) changes it. Stores written before
``lae_chosen`` existed name it ``lae_default``; it is read as the chosen eps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

from gbdist import __version__
from gbdist.errors import GbdistError, StoreError

SCHEMA_VERSION = 1

# ---------------------------------------------------------------- array names: spelled here (and for the
# structures, in ``gbdist.store.structures``) only; every other module imports them
GB_ID, GB_SOURCE, GB_OFFSET, GB_N_ATOMS = "gb/id", "gb/source", "gb/offset", "gb/n_atoms"
GB_NORMAL, GB_EXTENT, GB_RULE, GB_LATTICE = "gb/normal", "gb/extent", "gb/rule", "gb/lattice"
GB_LATTICE_CONSTANT, GB_HOST, GB_THICKNESS = "gb/lattice_constant", "gb/host", "gb/thickness"
GB_SELECTION = {"rule": GB_RULE, "lattice": GB_LATTICE, "lattice_constant": GB_LATTICE_CONSTANT, "host": GB_HOST,
                "thickness": GB_THICKNESS}
"""The per-structure records of the selection, by their name in a selection record."""
LAE_GB, LAE_ATOM, LAE_CNA, LAE_SOAP_NORM = "lae/gb", "lae/atom", "lae/cna", "lae/soap_norm"
SOAP, ASR = "soap", "asr"
PROGRESS_SOAP, PROGRESS_SOAP_CPU = "progress/soap", "progress/soap_cpu"
UNIQUE_SOAP, UNIQUE_SOURCE, UNIQUE_GB = "unique/soap", "unique/source", "unique/gb"
UNIQUE_ATOM, UNIQUE_COUNT = "unique/atom", "unique/count"


def open_group(url: str, mode: str = "r", storage_options: dict | None = None) -> zarr.Group:
    """Open (or with mode 'a'/'w' create) a gbdist store; check its schema version.

    Raises
    ------
    StoreError
        If there is no store, it cannot be written, or another schema version wrote it.
    """
    try:
        group = zarr.open_group(url, mode=mode, storage_options=storage_options, zarr_format=3)
    except FileNotFoundError:
        raise StoreError(f"{url}: no gbdist store here") from None
    except PermissionError as err:
        raise StoreError(f"{url}: cannot write the store ({err})") from None
    except OSError as err:
        raise StoreError(f"{url}: cannot open the store ({err})") from None
    version = group.attrs.get("schema_version")
    if version is None and mode in ("a", "w") and not list(group.keys()):
        group.attrs.update({"schema_version": SCHEMA_VERSION, "gbdist_version": __version__})
    elif version != SCHEMA_VERSION:
        raise StoreError(
            f"{url}: written by store schema version {version!r}; this gbdist reads version "
            f"{SCHEMA_VERSION}. Recompute into a new store."
        )
    return group


class StoreArrays:
    """A store's arrays for a worker task, each opened by its path on first use.

    Not through the root group: opening it reads the group's attributes, whose ``inputs`` list
    every input file (0.7 MB of JSON for 3,880 files), so a task per chunk that opened it would
    make a stage's cost grow with files × chunks. ``arrays["soap"]``,
    ``arrays["lae_eps_0.0320/label"]``: the same names as the group's.
    """

    def __init__(self, url: str, mode: str = "r", storage_options: dict | None = None):
        self.url, self.mode, self.storage_options = url, mode, storage_options
        self._open: dict[str, zarr.Array] = {}

    def __getitem__(self, path: str) -> CheckedArray:
        if path not in self._open:
            self._open[path] = CheckedArray(zarr.open_array(self.url, path=path, mode=self.mode,
                                                            storage_options=self.storage_options, zarr_format=3),
                                            self.url)
        return self._open[path]


class CheckedArray:
    """A zarr array whose reads, when a chunk fails to decode (a checksum mismatch, a truncated
    or corrupt chunk), raise a ``StoreError`` naming the store, the array and the chunk index.
    Everything else is the array's own."""

    def __init__(self, array: zarr.Array, url: str):
        self.array, self.url = array, url

    def __getattr__(self, name: str):
        if name == "array":  # not yet set (while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.array, name)

    def __setitem__(self, key, value) -> None:
        self.array[key] = value

    def __getitem__(self, key):
        try:
            return self.array[key]
        except Exception as err:
            raise chunk_error(self.array, self.url, err, _rows_of(key, self.array)) from None

    def get_orthogonal_selection(self, selection):
        try:
            return self.array.get_orthogonal_selection(selection)
        except Exception as err:
            raise chunk_error(self.array, self.url, err, None) from None


def _rows_of(key, array: zarr.Array) -> range | None:
    """Chunk indices along the first axis that a basic selection ``key`` touches (None: all)."""
    first = key[0] if isinstance(key, tuple) and key else key
    if isinstance(first, int | np.integer):
        first = slice(int(first), int(first) + 1)
    if not isinstance(first, slice) or array.ndim == 0:
        return None
    start, stop, _ = first.indices(array.shape[0])
    c = array.chunks[0]
    return range(start // c, max(start, stop - 1) // c + 1)


def chunk_decodes(array: zarr.Array, index: tuple[int, ...]) -> bool:
    """True if chunk ``index`` of ``array`` decodes (or was never written: it reads as the fill
    value); False if it is stored but its checksum, compressor or length refuses it."""
    try:
        array.blocks[index] if array.ndim else array[()]
    except Exception:  # any decode failure: checksum, blosc, zstd, a short read
        return False
    return True


def bad_chunks(array: zarr.Array, rows: range | None = None) -> list[tuple[int, ...]]:
    """Indices of the chunks of ``array`` (those along ``rows`` of the first axis, else all) that
    are stored but fail to decode (``chunk_decodes``)."""
    return [tuple(int(i) for i in index) for index in np.ndindex(*array.cdata_shape)
            if (rows is None or index[0] in rows) and not chunk_decodes(array, index)]


def chunk_error(array: zarr.Array, url: str, err: Exception, rows: range | None) -> Exception:
    """A ``StoreError`` naming the store, array and chunk(s) that failed to decode; ``err`` itself
    if no chunk of the selection is bad (the failure was something else)."""
    bad = bad_chunks(array, rows)
    if not bad:
        return err
    where = ", ".join(str(b) for b in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    return StoreError(f"{url}: array {array.path}, chunk {where}: corrupt or truncated (it fails to decode: {err}); "
                      f"run `gbdist check --store {url} --repair`, then rerun the stage that wrote it")


def stage_done(group: zarr.Group, stage: str) -> bool:
    """True once ``stage`` has recorded its completion in the group attributes."""
    return bool(group.attrs.get("stages", {}).get(stage, {}).get("done"))


def mark_stage(group: zarr.Group, stage: str, **info) -> None:
    """Record a stage's completion (call after its data are written)."""
    stages = dict(group.attrs.get("stages", {}))
    stages[stage] = {"done": True, **info}
    group.attrs["stages"] = stages


def clear_stage(group: zarr.Group, *stages: str) -> None:
    """Forget the completion of ``stages`` (their data will be recomputed)."""
    kept = {k: v for k, v in group.attrs.get("stages", {}).items() if k not in stages}
    group.attrs["stages"] = kept


SOAP_COMPRESSOR = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
"""SOAP floats: byte-shuffled LZ4 stores 1.76x smaller and reads 2.8x faster than zarr's zstd default."""


def create_store_array(group: zarr.Group, name: str, *, compressor=None, **kwargs) -> zarr.Array:
    """Create (overwrite) array ``name`` in ``group``: ``compressor`` (zarr's zstd default if None)
    followed by a crc32c checksum of every chunk; other keywords as ``zarr.Group.create_array``."""
    return group.create_array(name, compressors=[compressor or ZstdCodec(level=0), Crc32cCodec()],
                              overwrite=True, **kwargs)


def write_array(group: zarr.Group, name: str, data: np.ndarray, dims: list[str],
                chunks: tuple[int, ...] | None = None) -> zarr.Array:
    """Create (overwrite) array ``name`` holding ``data`` with dimension names ``dims``."""
    data = np.asarray(data)
    if chunks is None:
        chunks = tuple(max(1, min(s, 1 << 20)) for s in data.shape) if data.ndim else ()
    dtype = str if data.dtype.kind == "U" else data.dtype  # variable-length UTF-8, specified in v3
    arr = create_store_array(group, name, shape=data.shape, dtype=dtype, chunks=chunks, dimension_names=dims)
    if data.size:
        arr[...] = data
    return arr


@dataclass(frozen=True)
class RowPlan:
    """Where rows live: GB offsets and the cut of the row space into chunks.

    offsets : (n_gb + 1,) int64, GB i owns rows ``offsets[i]:offsets[i+1]``.
    chunk_rows : rows per ``soap`` chunk; chunk k owns rows ``[k*chunk_rows, (k+1)*chunk_rows)``.
    """

    offsets: np.ndarray
    chunk_rows: int

    @property
    def n_rows(self) -> int:
        return int(self.offsets[-1])

    @property
    def n_chunks(self) -> int:
        return -(-self.n_rows // self.chunk_rows)

    def chunk(self, k: int) -> tuple[int, int]:
        """Row range [start, stop) of chunk k."""
        start = k * self.chunk_rows
        return start, min(start + self.chunk_rows, self.n_rows)

    @property
    def max_gbs_per_chunk(self) -> int:
        """Most GBs whose rows one chunk holds (the ``touch`` length of ``partial/asr_*``)."""
        starts = np.arange(self.n_chunks) * self.chunk_rows
        stops = np.minimum(starts + self.chunk_rows, self.n_rows)
        first = np.searchsorted(self.offsets, starts, side="right") - 1
        last = np.searchsorted(self.offsets, stops, side="left")
        return int((last - first).max()) if self.n_chunks else 1

    def gb_slices(self, start: int, stop: int):
        """(gb position, row start, row stop) for each GB that has rows in [start, stop)."""
        first = int(np.searchsorted(self.offsets, start, side="right")) - 1
        gb = first
        while gb < len(self.offsets) - 1 and self.offsets[gb] < stop:
            lo, hi = max(start, int(self.offsets[gb])), min(stop, int(self.offsets[gb + 1]))
            if hi > lo:
                yield gb, lo, hi
            gb += 1


# ---------------------------------------------------------------- ASR partial sums
ASR_PARTIAL_GB = "partial/asr_gb"
ASR_PARTIAL_SUM = "partial/asr_sum"


def create_asr_partials(group: zarr.Group, plan: RowPlan, n_feat: int) -> None:
    """Create the (empty) per-chunk ASR partial sums, one chunk of each array per ``soap`` chunk."""
    touch = plan.max_gbs_per_chunk
    create_store_array(group, ASR_PARTIAL_GB, shape=(plan.n_chunks, touch), chunks=(1, touch), dtype=np.int32,
                       fill_value=-1, dimension_names=["soap_chunk", "touch"])
    create_store_array(group, ASR_PARTIAL_SUM, shape=(plan.n_chunks, touch, n_feat), chunks=(1, touch, n_feat),
                       dtype=np.float64, fill_value=0.0, dimension_names=["soap_chunk", "touch", "feature"])


def has_asr_partials(group: zarr.Group) -> bool:
    """True if the store's SOAP stage wrote per-chunk ASR partial sums (stores before 0.1 did not)."""
    return ASR_PARTIAL_SUM in group and ASR_PARTIAL_GB in group


def write_asr_partial(group: zarr.Group | StoreArrays, k: int, gbs: np.ndarray, sums: np.ndarray) -> None:
    """Write chunk k's per-GB sums: ``gbs`` (m,) GB positions, ``sums`` (m, feature)."""
    touch = group[ASR_PARTIAL_GB].shape[1]
    ids = np.full(touch, -1, np.int32)
    block = np.zeros((touch, sums.shape[1]))
    ids[:len(gbs)], block[:len(gbs)] = gbs, sums
    group[ASR_PARTIAL_SUM][k] = block
    group[ASR_PARTIAL_GB][k] = ids


def read_asr_partials(group: zarr.Group, plan: RowPlan) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every chunk's (GB positions, sums), in chunk order. The positions are the GBs with rows
    in the chunk, in order, as ``write_asr_partial`` wrote them: taken from the ``plan``, so only
    ``partial/asr_sum`` is read (one small file per chunk, not two)."""
    sums = group[ASR_PARTIAL_SUM][:]
    gbs = [np.array([gb for gb, _, _ in plan.gb_slices(*plan.chunk(k))], np.int64) for k in range(plan.n_chunks)]
    return [(g, s[:len(g)]) for g, s in zip(gbs, sums)]


# ---------------------------------------------------------------- a store predicted with a model bundle
ASSIGNED_GROUP = "assigned"
"""``assigned/label`` and ``assigned/similarity`` (lae,): each row's most similar unique LAE of a
model bundle (``gbdist predict``) and the inner product with it."""


MAP_GROUP = "map"
"""The PCA map of the SOAP rows (``gbdist map``): ``map/components`` (pc, feature), ``map/mean``
(feature,), ``map/explained_variance`` and ``map/explained_variance_ratio`` (pc,), and
``map/coords`` (lae, pc) float32, every row's first coordinates."""


# ---------------------------------------------------------------- LAE results per eps
LAE_GROUP_PREFIX = "lae_eps_"


def check_eps(eps: float, what: str = "eps") -> float:
    """``eps`` as a float if it is a usable SOAP distance threshold, 0 < eps < 2 (unit vectors)."""
    if not 0.0 < float(eps) < 2.0:
        raise GbdistError(f"{what} = {eps}: the SOAP distance threshold must lie in (0, 2)")
    return float(eps)


def eps_key(eps: float) -> str:
    """The key of an eps in ``lae_runs`` and in group names: 4 decimals."""
    return f"{float(eps):.4f}"


def lae_group_name(eps: float) -> str:
    """Name of the group holding the unique LAEs found at ``eps``."""
    return LAE_GROUP_PREFIX + eps_key(eps)


def lae_path(eps: float, name: str) -> str:
    """Path of array ``name`` (``ler``, ``label``, ``unique/soap``, …) of the LAE results at ``eps``."""
    return f"{lae_group_name(eps)}/{name}"


BLOCK_ENERGY = ("count", "mean", "std")
"""The building-block energies of a per-atom column ``c`` at one eps: ``unique/site/<c>/count``,
``…/mean`` and ``…/std`` (unique,), the rows assigned to each unique LAE and their mean and
standard deviation of ``c`` (eV for an energy)."""


def write_block_energies(group: zarr.Group, eps: float, column: str, count: np.ndarray, mean: np.ndarray,
                         std: np.ndarray) -> None:
    """Store the building-block energies of ``column`` at ``eps`` (see ``BLOCK_ENERGY``)."""
    for name, values in zip(BLOCK_ENERGY, (count, mean, std)):
        write_array(group, block_energy_path(eps, column, name), values, ["unique"])


def block_energy_columns(group: zarr.Group, eps: float) -> list[str]:
    """The per-atom columns with building-block energies stored at ``eps``."""
    path = lae_path(eps, "unique/site")
    return sorted(name for name, _ in group[path].groups()) if path in group else []


def block_energy_path(eps: float, column: str, stat: str) -> str:
    """Path of one of ``BLOCK_ENERGY`` (count, mean, std) of ``column`` at ``eps``."""
    return lae_path(eps, f"unique/site/{column}/{stat}")


def read_block_energies(group: zarr.Group, eps: float, column: str) -> dict[str, np.ndarray] | None:
    """{count, mean, std} of ``column`` at ``eps`` as stored by ``write_block_energies``, or None."""
    if block_energy_path(eps, column, "mean") not in group:
        return None
    return {name: group[block_energy_path(eps, column, name)][:] for name in BLOCK_ENERGY}


def lae_runs(group: zarr.Group) -> dict[str, dict]:
    """``{eps key: run record}`` of the finished (and unfinished) LAE runs in the store."""
    return dict(group.attrs.get("lae_runs", {}))


def lae_done(group: zarr.Group, eps: float) -> bool:
    """True once the unique LAEs at ``eps`` are stored."""
    return bool(lae_runs(group).get(eps_key(eps), {}).get("done"))


def chosen_eps(group: zarr.Group) -> float | None:
    """The store's chosen eps (the LER later stages use), or None before any LAE run."""
    value = group.attrs.get("lae_chosen", group.attrs.get("lae_default"))
    return None if value is None else float(value)


def resolve_eps(group: zarr.Group, store: str, eps: float | None = None) -> float:
    """``eps`` (checked to have a finished run) or the store's chosen eps.

    Raises
    ------
    StoreError
        If there is no finished LAE run at ``eps``, or no LAE run at all.
    """
    if eps is None:
        eps = chosen_eps(group)
        if eps is None:
            raise StoreError(f"{store}: no LAE run yet; run `gbdist lae --store {store}` first")
    eps = check_eps(eps)
    if not lae_done(group, eps):
        runs = ", ".join(k for k, v in lae_runs(group).items() if v.get("done")) or "none"
        raise StoreError(f"{store}: no finished LAE run at eps {eps_key(eps)} (finished runs: {runs})")
    return eps


def begin_lae_run(group: zarr.Group, eps: float) -> zarr.Group:
    """Forget any record of a run at ``eps`` (it is not done while its arrays are rewritten);
    return its group, created if needed."""
    runs = lae_runs(group)
    runs.pop(eps_key(eps), None)
    group.attrs["lae_runs"] = runs
    return group.require_group(lae_group_name(eps))


def record_lae_run(group: zarr.Group, eps: float, info: dict, choose: bool = False) -> bool:
    """Record a finished run at ``eps`` (call after its data are written). It becomes the
    chosen eps if ``choose`` or if the store has none yet; returns whether it is chosen."""
    runs = lae_runs(group)
    runs[eps_key(eps)] = {"done": True, **info}
    chosen = chosen_eps(group)
    group.attrs.update({"lae_runs": runs,  # an older store's lae_default is written under its new name
                        "lae_chosen": eps_key(eps if choose or chosen is None else chosen)})
    return chosen_eps(group) == float(eps_key(eps))


def choose_eps(group: zarr.Group, store: str, eps: float) -> None:
    """Make the finished run at ``eps`` the store's chosen one."""
    resolve_eps(group, store, eps)
    group.attrs["lae_chosen"] = eps_key(eps)
