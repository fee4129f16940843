"""Spatial domains of a large structure: a grid along its cell vectors, so that a SOAP task reads
only the atoms of its centres' domains and a halo around them, never the whole structure.

A structure of at most ``split_atoms`` atoms is one domain (grid (1, 1, 1)): it is read whole, as
before. A larger one is cut into about ``n_atoms / domain_atoms`` domains, splitting the axis whose
domains are thickest each time, never into domains thinner than the halo width (the SOAP cutoff
and dscribe's Gaussian padding), so the halo of a domain lies within its 26 neighbours. Along a
split periodic axis the neighbours wrap around with a shift of one cell vector; the environment
then holds those images explicitly and is not periodic along that axis.
"""

from __future__ import annotations

import numpy as np

from gbdist.compute.crystal import complete_cell, fractional
from gbdist.io.checks import blocks, cell_heights
from gbdist.structure import Structure

SPLIT_ATOMS = 1 << 19
"""Atoms above which a structure is cut into domains. A SOAP task holds about 100 B per atom of
its environment beyond dscribe's pair memory (positions, numbers, the ASE copy, the neighbour
grid): 50 MB at this size, far below a task's budget; what cutting saves is reading: every chunk
task of a structure read it whole, so a 10⁷-atom structure would be read by each of its hundreds of
chunk tasks."""

DOMAIN_ATOMS = 1 << 16
"""Atoms per domain aimed at when a structure is cut: a task reads its domains and their 26
neighbours (at most about 27 × 65,536 atoms, 42 MB of positions) and keeps only the halo."""


def domain_grid(structure: Structure, width: float, split_atoms: int = SPLIT_ATOMS,
                domain_atoms: int = DOMAIN_ATOMS) -> np.ndarray:
    """(3,) int, domains along each cell vector: (1, 1, 1) up to ``split_atoms`` atoms; else about
    ``len / domain_atoms`` domains, none thinner than ``width`` Å along a split vector."""
    grid = np.ones(3, np.int64)
    if len(structure) <= split_atoms:
        return grid
    heights = cell_heights(complete_cell(structure))
    target = -(-len(structure) // domain_atoms)
    while grid.prod() < target:
        after = heights / (grid + 1)  # domain thickness once split once more
        after[after < width] = -1.0
        axis = int(np.argmax(after))
        if after[axis] < 0:
            break
        grid[axis] += 1
    return grid


def domain_of(structure: Structure, grid: np.ndarray) -> np.ndarray:
    """(n,) int64, the domain of each atom: ((i · g1) + j) · g2 + k for its cell along each vector
    (fractional coordinates wrapped along periodic vectors, clipped along open ones)."""
    domain = np.zeros(len(structure), np.int64)
    if (grid == 1).all():
        return domain
    for block in blocks(len(structure)):
        atoms = np.arange(block.start, block.stop)
        cells = np.clip(np.floor(fractional(structure, atoms) * grid).astype(np.int64), 0, grid - 1)
        domain[atoms] = np.ravel_multi_index(cells.T, grid)
    return domain


def domain_order(structure: Structure, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The atoms in domain order (stable: file order within a domain) and the domains' atom offsets.

    Returns
    -------
    order : (n,) int64, stored atom j is ``structure``'s atom ``order[j]``.
    offsets : (n_domains + 1,) int64, domain d holds stored atoms ``offsets[d]:offsets[d+1]``.
    """
    domain = domain_of(structure, grid)
    order = np.argsort(domain, kind="stable")
    counts = np.bincount(domain, minlength=int(grid.prod()))
    return order, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def halo_cells(domains: np.ndarray, grid: np.ndarray, pbc: np.ndarray) -> list[tuple[int, int, tuple[int, int, int]]]:
    """For each domain in ``domains`` and each of its neighbours (itself included): (domain,
    neighbour, shift), the shift in cell vectors that brings the neighbour next to the domain
    (non-zero where a periodic vector wraps). No neighbour beyond an open end, and none along an
    unsplit vector (the environment stays periodic there)."""
    out = []
    for d in np.unique(domains):
        centre = np.array(np.unravel_index(int(d), grid))
        steps = [(-1, 0, 1) if grid[a] > 1 else (0,) for a in range(3)]
        for step in np.array(np.meshgrid(*steps, indexing="ij")).reshape(3, -1).T:
            cell = centre + step
            if any(not pbc[a] and not 0 <= cell[a] < grid[a] for a in range(3)):
                continue
            shift = np.floor_divide(cell, grid)
            out.append((int(d), int(np.ravel_multi_index(cell % grid, grid)), tuple(int(s) for s in shift)))
    return out


def centre_order(structure: Structure, grid: np.ndarray, centres: np.ndarray, domains: np.ndarray,
                 width: float) -> np.ndarray:
    """``centres`` (indices, by atom id) in row order: by their ``domains`` (as stored), then, in a
    cut structure, by cells of about twice ``width`` (raster order), so that a few hundred
    consecutive rows are spatially compact and their environment small; by atom id within a cell."""
    if (grid == 1).all():
        return centres
    heights = cell_heights(complete_cell(structure))
    fine = grid * np.maximum(1, np.floor(heights / grid / (2 * width))).astype(np.int64)
    cells = np.clip(np.floor(fractional(structure, centres) * fine).astype(np.int64), 0, fine - 1)
    return centres[np.lexsort((np.ravel_multi_index(cells.T, fine), domains))]  # stable: by id within a cell


def environment(boxes: dict[int, tuple[np.ndarray, np.ndarray]], cell: np.ndarray, origin: np.ndarray,
                pbc: np.ndarray, grid: np.ndarray, width: float, read,
                cache: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The atoms within ``width`` Å of a set of centres, images included.

    ``boxes`` maps each domain holding centres to their fractional bounding box (lo (3,), hi (3,),
    wrapped into the cell along split periodic vectors). ``read(d)`` returns (positions (m, 3) Å,
    stored atom rows (m,)) of domain d; ``cache`` keeps what was read for the next call. Kept is
    every atom of those domains and their neighbours whose fractional coordinates, wrapped and
    shifted by whole cell vectors along split periodic vectors, lie within ``width`` (in each split
    vector's thickness) of a box; each (atom, shift) once.

    Returns
    -------
    positions : (m, 3) float64 Å, absolute (an atom that is not moved keeps its exact position).
    rows : (m,) int64, stored atom row of each (an atom may appear more than once, as images).
    in_place : (m,) bool, the atom itself in the cell (wrapped), not a periodic image: where a
        centre is.
    """
    split = grid > 1
    margin = (width / cell_heights(cell))[split]
    cache = {} if cache is None else cache
    kept_pos, kept_rows, kept_moved, kept_in_place = [], [], [], []
    for d, neighbour, shift in halo_cells(np.array(sorted(boxes)), grid, pbc):
        pos, rows, frac, wrap = cached_domain(cache, neighbour, read, cell, origin, split & pbc)
        lo, hi = boxes[d]
        f = frac[:, split] + np.array(shift)[split]
        inside = np.all((f >= lo[split] - margin) & (f <= hi[split] + margin), axis=1)
        moved = np.array(shift) - wrap[inside]
        kept_pos.append(pos[inside] + moved @ cell)
        kept_rows.append(rows[inside])
        kept_moved.append(moved)
        kept_in_place.append(np.full(len(moved), not any(shift)))
    rows, moved = np.concatenate(kept_rows), np.concatenate(kept_moved)
    first = np.unique(np.column_stack([rows, moved]), axis=0, return_index=True)[1]
    return np.concatenate(kept_pos)[first], rows[first], np.concatenate(kept_in_place)[first]


def cached_domain(cache: dict, domain: int, read, cell: np.ndarray, origin: np.ndarray,
                  wrap_axes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Domain ``domain``'s (positions, stored rows, wrapped fractional coordinates, cell vectors
    taken off to wrap them), read with ``read`` the first time and kept in ``cache``."""
    if domain not in cache:
        positions, rows = read(domain)
        cache[domain] = (positions, rows, *wrapped_fractional(positions, cell, origin, wrap_axes))
    return cache[domain]


def wrapped_fractional(positions: np.ndarray, cell: np.ndarray, origin: np.ndarray,
                       wrap_axes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fractional coordinates (m, 3) wrapped into [0, 1) along ``wrap_axes``, and the whole cell
    vectors (m, 3) int64 taken off to wrap them."""
    frac = (positions - origin) @ np.linalg.inv(cell)
    wrap = np.zeros(frac.shape, np.int64)
    wrap[:, wrap_axes] = np.floor(frac[:, wrap_axes]).astype(np.int64)
    return frac - wrap, wrap
