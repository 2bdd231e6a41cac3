"""Personalized PageRank over a sparse, undirected, weighted graph that grows and changes.

The engine keeps the adjacency as cached scipy CSR matrices and never rebuilds them per
query. Writes are weight *deltas* (positive when an edge gains support, negative when an
invalidated fact stops conducting) appended to a buffer; the next query folds the buffer
in only when something changed:

* a ``main`` CSR matrix over the nodes known at the last full merge;
* a ``delta`` CSR matrix holding every change since then, rebuilt from its COO triplets
  at a cost proportional to the change, and merged into ``main`` (a full rebuild) only
  when it grows past ``fold_fraction`` of ``main`` — so full rebuilds are amortised;
* node degrees (row sums) kept up to date on every delta, so the transition matrix
  ``A D^-1`` is never materialised.

The walk follows networkx's :func:`~networkx.pagerank` semantics (``alpha`` = the damping
used here; a dangling node's mass returns to the personalization vector). Rather than
handle dangling nodes inside the loop, the engine iterates the sub-stochastic system
``x = d A D^-1 x + (1 - d) p`` and normalises the result: redistributing dangling mass
in proportion to ``p`` only rescales that solution, so the two are the same ranking and,
after normalising, the same values.

The walk stops once the L1 change bounds the error below ``tol``, or once the change no
longer shrinks and is no larger than what rounding in ``dtype`` sustains: in exact
arithmetic the change shrinks by a factor ``d`` every step, so a change that does not is
rounding, and further steps only move the vector around within it. That floor is set by
the hubs: a node summing ``n`` terms per step rounds by up to about ``n`` units in the
last place of its mass. On the LoCoMo replay's graphs, a speaker linked to 218 passages
and holding 30% of the mass keeps float32 walks changing by 1.5-3.8e-6 per step forever
(a two-step rounding cycle), above the 1e-6 that ``tol`` asks for; they used to run out
their 100 steps with a warning, and now stop after about 30, with the same values give or
take that cycle. (float64 walks from the same seeds stop after 17 steps, 1.1-2.3e-6 away
in L1: as close as float32 gets.)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)

try:  # y += A @ x in place, without allocating: the hot loop's only heavy step.
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec
except ImportError:  # pragma: no cover - a private scipy module; fall back to the operator
    _csr_matvec = None

#: Degrees below this are treated as zero (an edge whose every fact was invalidated).
_EMPTY = 1e-9

#: Set once a walk that did not converge was reported: a graph store builds an engine per
#: user and per past view, so reporting once per engine would still flood a replay.
_REPORTED = threading.Event()


@dataclass
class EngineStats:
    """What the engine did, for tests and benchmarks.

    Attributes:
        compiles: Times pending changes were folded into the cached matrices.
        folds: Times the change matrix was merged into the main matrix (full rebuilds).
        runs: PageRank queries answered.
        iterations: Power iterations of the last query.
        unconverged: Queries that used ``max_iter`` iterations without converging.
    """

    compiles: int = 0
    folds: int = 0
    runs: int = 0
    iterations: int = 0
    unconverged: int = 0


class PersonalizedPageRank:
    """Personalized PageRank by power iteration over cached sparse matrices.

    Args:
        damping: Probability of following an edge at each step (networkx's ``alpha``);
            ``1 - damping`` is the restart probability. HippoRAG 2 uses 0.5.
        tol: Stop once the L1 error of the solution is provably below ``tol``, or once
            the change is down to what rounding in ``dtype`` sustains (see the module).
        max_iter: Give up after this many iterations (a warning, once per process; the
            rest at debug level).
        fold_fraction: Merge the change matrix into the main one once it holds this
            fraction of the main matrix's entries.
        dtype: The float type of the matrices and the walk. ``float32`` halves the memory
            traffic of the hot loop (float64 queries take 1.5 times as long on 100k
            nodes); its rounding in the L1 norm is about 6e-8 times the sum over nodes of
            degree times mass: 1e-7 when the mass is spread out, a few 1e-6 when a hub
            of a few hundred edges holds a third of it. Use ``float64`` for tighter bounds.
    """

    def __init__(
        self,
        *,
        damping: float = 0.5,
        tol: float = 1e-6,
        max_iter: int = 100,
        fold_fraction: float = 0.05,
        dtype: type[np.floating[Any]] = np.float32,
    ) -> None:
        if not 0.0 < damping < 1.0:
            raise ValueError(f"damping must be in (0, 1), got {damping}")
        self.damping = damping
        self.tol = tol
        self.max_iter = max_iter
        self.fold_fraction = fold_fraction
        self.dtype = np.dtype(dtype)
        self.stats = EngineStats()
        self._labels: list[Hashable] = []
        self._index: dict[Hashable, int] = {}
        self._degree = np.zeros(64)
        # Changes not yet compiled: chunks of (rows, cols, deltas), one direction each.
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._single: tuple[list[int], list[int], list[float]] = ([], [], [])
        # Compiled changes since the last fold, as COO triplets and as CSR.
        self._delta_coo: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._delta: sp.csr_matrix | None = None
        self._main = sp.csr_matrix((0, 0), dtype=self.dtype)
        self._compiled_nodes = 0
        self._inverse_degree = np.zeros(0)

    # -- building -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._labels)

    @property
    def labels(self) -> Sequence[Hashable]:
        """The node labels, by index."""
        return self._labels

    def index(self, label: Hashable) -> int | None:
        """Return the index of a node, or ``None`` when unknown."""
        return self._index.get(label)

    def add_node(self, label: Hashable) -> int:
        """Add a node (if new) and return its index."""
        found = self._index.get(label)
        if found is not None:
            return found
        index = len(self._labels)
        self._labels.append(label)
        self._index[label] = index
        if index >= len(self._degree):
            self._degree = np.concatenate([self._degree, np.zeros(len(self._degree))])
        return index

    def add_nodes(self, labels: Iterable[Hashable]) -> list[int]:
        """Add several nodes; return their indices."""
        return [self.add_node(label) for label in labels]

    def add_weight(self, u: int, v: int, delta: float) -> None:
        """Change the weight of the undirected edge ``u``–``v`` by ``delta``."""
        if u == v or delta == 0.0:
            return  # self-loops carry nothing in an undirected walk over entities
        rows, cols, values = self._single
        rows += (u, v)
        cols += (v, u)
        values += (delta, delta)
        self._degree[u] += delta
        self._degree[v] += delta

    def add_weights(self, us: np.ndarray, vs: np.ndarray, deltas: np.ndarray) -> None:
        """Change many undirected edge weights at once (vectorised :meth:`add_weight`)."""
        us = np.asarray(us, dtype=np.int64)
        vs = np.asarray(vs, dtype=np.int64)
        deltas = np.asarray(deltas, dtype=np.float64)
        keep = (us != vs) & (deltas != 0.0)
        us, vs, deltas = us[keep], vs[keep], deltas[keep]
        if len(us) == 0:
            return
        if max(int(us.max()), int(vs.max())) >= len(self._labels):
            raise IndexError("add_weights refers to a node that was never added")
        self._pending.append(
            (np.concatenate([us, vs]), np.concatenate([vs, us]), np.tile(deltas, 2))
        )
        size = len(self._degree)
        self._degree += np.bincount(us, deltas, minlength=size) + np.bincount(
            vs, deltas, minlength=size
        )

    def degree(self, index: int) -> float:
        """Return the current weighted degree of a node."""
        return float(self._degree[index])

    @property
    def dirty(self) -> bool:
        """Whether a change waits to be compiled before the next query."""
        return bool(self._pending or self._single[0]) or len(self._labels) != self._compiled_nodes

    # -- compiling ------------------------------------------------------------------------

    def compile(self) -> None:
        """Fold pending changes into the cached matrices; a no-op when nothing changed."""
        if not self.dirty:
            return
        self.stats.compiles += 1
        size = len(self._labels)
        chunks = list(self._pending)
        rows, cols, values = self._single
        if rows:
            chunks.append((np.array(rows), np.array(cols), np.array(values, dtype=np.float64)))
        if self._delta_coo is not None:
            chunks.insert(0, self._delta_coo)
        self._pending, self._single = [], ([], [], [])
        if chunks:
            coo = tuple(np.concatenate(parts) for parts in zip(*chunks, strict=True))
            self._delta_coo = (coo[0], coo[1], coo[2])
        if self._delta_coo is not None and (
            len(self._delta_coo[0]) > self.fold_fraction * max(self._main.nnz, 1)
        ):
            self._fold(size)
        elif self._delta_coo is not None:
            self._delta = self._summed(*self._delta_coo, size).astype(self.dtype)
        degree = self._degree[:size]
        inverse = np.divide(1.0, degree, out=np.zeros(size), where=degree > _EMPTY)
        self._inverse_degree = inverse.astype(self.dtype)
        self._compiled_nodes = size

    def _fold(self, size: int) -> None:
        """Merge the change matrix into the main matrix (the only full rebuild)."""
        assert self._delta_coo is not None
        self.stats.folds += 1
        main = self._main.tocoo()
        rows_, cols_, values_ = self._delta_coo
        self._main = self._summed(
            np.concatenate([main.row, rows_]),
            np.concatenate([main.col, cols_]),
            np.concatenate([main.data.astype(np.float64), values_]),
            size,
        ).astype(self.dtype)
        self._delta_coo = None
        self._delta = None

    def _summed(
        self, rows: np.ndarray, cols: np.ndarray, values: np.ndarray, size: int
    ) -> sp.csr_matrix:
        """Return the float64 matrix of the summed triplets, less the edges that cancel.

        An edge whose support was all withdrawn sums to zero only up to rounding, and the
        weights kept in ``dtype`` were already rounded: float32 leaves up to about 1e-7
        of a withdrawn weight of 2, positive or negative, which an absolute cut-off below
        that rounding would keep as an edge. What is within rounding of the sum of the
        parts' magnitudes is dropped instead.
        """
        shape = (size, size)
        total = sp.csr_matrix((values, (rows, cols)), shape=shape)
        total.sum_duplicates()
        cutoff: float | np.ndarray = _EMPTY
        if (values < 0).any():  # only a withdrawal cancels: only then a second pass
            scale = sp.csr_matrix((np.abs(values), (rows, cols)), shape=shape)
            scale.sum_duplicates()  # the same coordinates: the same entries, the same order
            cutoff = float(np.finfo(self.dtype).eps) * scale.data + _EMPTY
        total.data[np.abs(total.data) <= cutoff] = 0.0
        total.eliminate_zeros()
        return total

    # -- querying -------------------------------------------------------------------------

    def personalization(self, seeds: Mapping[int, float]) -> np.ndarray:
        """Return the dense restart vector for ``seeds`` (index -> non-negative weight)."""
        vector = np.zeros(len(self._labels))
        for index, weight in seeds.items():
            if weight < 0:
                raise ValueError(f"seed weights must be non-negative, got {weight}")
            vector[index] += weight
        return vector

    def run(self, seeds: Mapping[int, float] | np.ndarray) -> np.ndarray:
        """Return the PageRank of every node for restarts at ``seeds`` (sums to 1).

        Args:
            seeds: Restart weights by node index, or a dense vector over all nodes;
                normalised to sum to 1.

        Raises:
            ValueError: No seed has a positive weight, or a weight is negative.
        """
        self.compile()
        size = len(self._labels)
        restart = (
            self.personalization(seeds)
            if isinstance(seeds, Mapping)
            else np.array(seeds, dtype=np.float64)
        )
        total = restart.sum()
        if restart.shape != (size,) or total <= 0 or (restart < 0).any():
            raise ValueError("the restart vector needs a positive weight on at least one node")
        restart /= total
        damping = self.damping
        # Each step is x <- d * (A D^-1 x + (1 - d) / d * p): start the product from the
        # restart term so the sparse kernel adds into it, then scale once.
        offset = ((1.0 - damping) / damping * restart).astype(self.dtype)
        # ||x_t - x*|| <= d / (1 - d) * ||x_t - x_{t-1}|| for a d-contraction.
        threshold = self.tol * (1.0 - damping) / damping
        rank = restart.astype(self.dtype)
        scaled, step, change = (np.empty(size, dtype=self.dtype) for _ in range(3))
        main_size = self._main.shape[0]
        local = True  # while the walk is near the seeds, touch only the rows it reached
        iterations, total, previous = 0, np.inf, np.inf
        for iterations in range(1, self.max_iter + 1):  # noqa: B007 (reported below)
            np.multiply(rank, self._inverse_degree, out=scaled)
            np.copyto(step, offset)
            local = local and self._spread_locally(scaled, step)
            if not local:
                _matvec_add(self._main, scaled[:main_size], step[:main_size])
                if self._delta is not None:
                    _matvec_add(self._delta, scaled, step)
            step *= damping
            np.subtract(step, rank, out=change)
            np.abs(change, out=change)
            rank, step = step, rank
            total = float(change.sum(dtype=np.float64))
            if total < threshold:
                break
            # Exact steps shrink the change by d: one that does not shrink is rounding.
            if total >= previous and total <= self._rounding(rank):
                break
            previous = total
        else:
            self.stats.unconverged += 1
            report = logger.debug if _REPORTED.is_set() else logger.warning
            _REPORTED.set()
            report(
                "PageRank did not converge in %d iterations (L1 change %.2g, wanted %.2g);"
                " later ones are logged at debug level",
                self.max_iter,
                total,
                threshold,
            )
        self.stats.runs += 1
        self.stats.iterations = iterations
        return rank.astype(np.float64) / rank.sum(dtype=np.float64)

    def _rounding(self, rank: np.ndarray) -> float:
        """Return the largest L1 change that rounding alone can keep up at ``rank``.

        A step computes node i's mass as a sum of its n_i neighbours' terms, off by up to
        about (n_i + 4) units of roundoff times that mass; with e the L1 norm of those
        errors, successive changes obey c' <= d c + 2e, so rounding keeps up at most
        2e / (1 - d).
        """
        terms = np.full(len(rank), 4.0)
        main_size = self._main.shape[0]
        terms[:main_size] += np.diff(self._main.indptr)
        if self._delta is not None:
            terms += np.diff(self._delta.indptr)
        roundoff = float(np.finfo(self.dtype).eps) / 2
        error = roundoff * float(np.dot(terms, np.abs(rank, dtype=np.float64)))
        return 2.0 * error / (1.0 - self.damping)

    def _spread_locally(self, scaled: np.ndarray, out: np.ndarray) -> bool:
        """Add ``A @ scaled`` to ``out`` from the rows of its non-zeros, if that is cheaper.

        The first steps of a walk from a few seeds reach a few hundred nodes; since ``A``
        is symmetric, ``A @ v`` is the sum of the rows of ``A`` at ``v``'s non-zeros.
        Returns False (and adds nothing) once the reached rows hold an eighth of ``A``.
        """
        reached = np.flatnonzero(scaled)
        main_size = self._main.shape[0]
        in_main = reached[reached < main_size]
        work = int((self._main.indptr[in_main + 1] - self._main.indptr[in_main]).sum())
        if work > self._main.nnz // 8:
            return False
        for matrix, rows in ((self._main, in_main), (self._delta, reached)):
            if matrix is not None and matrix.nnz and len(rows):
                product = matrix[rows].T @ scaled[rows]
                out[: len(product)] += product.astype(self.dtype, copy=False)
        return True


def _matvec_add(matrix: sp.csr_matrix, vector: np.ndarray, out: np.ndarray) -> None:
    """Add ``matrix @ vector`` to ``out`` in place."""
    if matrix.nnz == 0:
        return
    if _csr_matvec is not None and matrix.data.dtype == vector.dtype == out.dtype:
        rows, cols = matrix.shape
        _csr_matvec(rows, cols, matrix.indptr, matrix.indices, matrix.data, vector, out)
    else:  # pragma: no cover - only without scipy's private kernel
        out += matrix @ vector


__all__ = ["EngineStats", "PersonalizedPageRank"]
