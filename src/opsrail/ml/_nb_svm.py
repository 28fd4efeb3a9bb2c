"""The NB-SVM (Wang and Manning, 2012) of the ticket classifier, one class per worker process.

One linear SVM per class, that class against the rest, trained on the TF-IDF features scaled column by column by
the class's naive Bayes log-count ratio; the ratio is folded into the weights afterwards, so the model is one
weight matrix over the raw features, exactly the shape of a plain SVM.

The per-class fits are independent, but they cannot share a process: liblinear draws from one process-wide random
generator, so fits on parallel threads interleave their draws and the same data and seed would give another model.
``FitPool`` runs them in worker processes (joblib's) instead, each with its own generator, seeded by its own fit
exactly as a fit in the calling process is: the weights are the same bit for bit, whatever the number of workers.
The feature matrix reaches the workers once, as files in a temporary folder; each fit sends only the row numbers of
its training part and the labels, and a worker copies that part out of the files once for all its class fits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from joblib.parallel import BACKENDS
from sklearn.svm import LinearSVC

log = logging.getLogger(__name__)
_T = TypeVar("_T")

NB_SVM_ALPHA = 1.0
"""Additive smoothing of the feature sums behind each class's log-count ratio."""

MAX_WORKERS = 4
"""More worker processes than this gain little (eight classes, uneven fits) and each holds its training rows."""


def _totals(features: sp.csr_matrix) -> np.ndarray:
    return np.asarray(features.sum(axis=0), dtype=np.float64).ravel() + NB_SVM_ALPHA * 2


def _class_fit(
    features: sp.csr_matrix, y: np.ndarray, k: int, totals: np.ndarray, *, c: float, seed: int
) -> tuple[np.ndarray, float] | None:
    """Weights (ratio folded in) and bias of class ``k`` against the rest; None when ``y`` has no such class or
    nothing else."""
    mask = y == k
    if not mask.any() or mask.all():
        return None
    inside = np.asarray(features[mask].sum(axis=0), dtype=np.float64).ravel() + NB_SVM_ALPHA
    outside = totals - inside
    ratio = np.log(inside / inside.sum()) - np.log(outside / outside.sum())
    # The scaled copy shares the index arrays: only its values (float64, as liblinear takes them) are new.
    values = ratio[features.indices]
    values *= features.data
    scaled = sp.csr_matrix((values, features.indices, features.indptr), shape=features.shape)
    svm = LinearSVC(C=c, random_state=seed).fit(scaled, mask.astype(np.int8))
    return ratio * svm.coef_.ravel(), float(svm.intercept_[0])


def _assemble(
    fits: list[tuple[np.ndarray, float] | None], n_classes: int, n_features: int
) -> tuple[np.ndarray, np.ndarray]:
    weights = np.zeros((n_classes, n_features))
    bias = np.full(n_classes, -1.0)
    for k, fit in enumerate(fits):
        if fit is not None:
            weights[k], bias[k] = fit
    return weights, bias


def nb_svm_fit(
    features: sp.csr_matrix, y: np.ndarray, n_classes: int, *, c: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """One-against-the-rest NB-SVM in this process: weights (one row per class, so ``features @ weights.T + bias``
    scores raw features) and biases. A class absent from ``y`` (stratified folds never leave one out) gets zero
    weights and a bias of -1, the score of a plain "no"."""
    totals = _totals(features)
    fits = [_class_fit(features, y, k, totals, c=c, seed=seed) for k in range(n_classes)]
    return _assemble(fits, n_classes, features.shape[1])


# -- worker side --------------------------------------------------------------------------------------------------

_parts: dict[tuple[str, bytes], tuple[sp.csr_matrix, np.ndarray]] = {}


def _load_part(folder: str, rows: np.ndarray | None) -> sp.csr_matrix:
    """The training part, copied out of the shared files, which are then unmapped (so their space is freed as soon
    as the caller removes them)."""
    arrays = {name: np.load(Path(folder) / f"{name}.npy", mmap_mode="r") for name in ("data", "indices", "indptr")}
    shape = tuple(int(n) for n in np.load(Path(folder) / "shape.npy"))
    matrix = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape, copy=False)
    part = matrix.copy() if rows is None else matrix[rows]
    return sp.csr_matrix((np.array(part.data), np.array(part.indices), np.array(part.indptr)), shape=part.shape)


def _fit_in_worker(
    folder: str, rows: np.ndarray | None, y: np.ndarray, k: int, c: float, seed: int
) -> tuple[np.ndarray, float] | None:
    key = (folder, b"" if rows is None else rows.tobytes())
    part = _parts.get(key)
    if part is None:
        _parts.clear()  # one training part at a time: the class fits of one part arrive together
        features = _load_part(folder, rows)
        part = (features, _totals(features))
        _parts[key] = part
    features, totals = part
    return _class_fit(features, y, k, totals, c=c, seed=seed)


# -- caller side --------------------------------------------------------------------------------------------------


_FOLDER_PREFIX = "opsrail-nbsvm-"
STALE_FOLDER_SECONDS = 3600.0
"""A shared folder left by a process that no longer runs (killed mid-training) is removed once it is this old."""


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_folders(parent: Path, *, older_than: float = STALE_FOLDER_SECONDS) -> list[Path]:
    """Remove the shared folders in ``parent`` whose training process has ended without removing them (a process
    killed with SIGKILL cannot) and which are older than ``older_than`` seconds; returns what was removed.

    The age guard keeps a folder whose process merely looks ended from here (another PID namespace sharing the
    temporary folder, say) for the length of any training."""
    removed = []
    now = time.time()
    for folder in parent.glob(f"{_FOLDER_PREFIX}*-*"):
        pid_text = folder.name[len(_FOLDER_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _process_runs(int(pid_text)):
            continue
        try:
            if now - folder.stat().st_mtime < older_than:
                continue
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    if removed:
        log.info("removed %d shared folder(s) left by ended trainings", len(removed))
    return removed


MIN_PARALLEL_NONZEROS = 2_000_000
"""Below this many stored feature values (about 4,000 tickets) the fits run in the calling process: starting the workers
and copying the matrix to them costs about as much as the fits (2,000 tickets: 1.9 s either way)."""


WORKER_BYTES_PER_VALUE = 32
"""Memory a worker holds per stored value of the whole feature matrix, measured (2026-12-07): its training part (4-byte
values and indices), the part's values scaled for one class (8 bytes) and liblinear's own copy of them (16 bytes)."""

WORKER_MEMORY_SHARE = 0.6
"""Share of the memory available to this process that the workers together may plan on."""


def available_memory() -> int | None:
    """Bytes this process can still use: the system's available memory, or what its control group's limit leaves,
    whichever is less; None where neither can be read."""
    found: list[int] = []
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo", encoding="ascii") as meminfo:
        found += [int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:")]
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    return max(0, min(found)) if found else None


def default_workers(n_classes: int, nonzeros: int) -> int:
    """Worker processes for ``n_classes`` fits over a matrix of ``nonzeros`` stored values: the cores this process
    may use, at most ``MAX_WORKERS``, and no more than the available memory holds (each worker keeps its own copy of
    the training rows, about ``WORKER_BYTES_PER_VALUE`` a value); 1 (this process) for a small matrix. The model is
    the same whatever the number."""
    if nonzeros < MIN_PARALLEL_NONZEROS:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    workers = max(1, min(cores, n_classes, MAX_WORKERS))
    memory = available_memory()
    if memory is not None:
        fits = int(WORKER_MEMORY_SHARE * memory // (WORKER_BYTES_PER_VALUE * nonzeros))
        if fits < workers:
            log.info(
                "fitting on %d worker process(es) instead of %d: each needs about %.1f GB and %.1f GB is available",
                max(1, fits),
                workers,
                WORKER_BYTES_PER_VALUE * nonzeros / 1e9,
                memory / 1e9,
            )
            workers = max(1, fits)
    return workers


class FitPool:
    """NB-SVM fits over one feature matrix, one class per worker process (see the module docstring).

    Use as a context manager; ``share`` the matrix, then ``fit`` any of its row subsets. The workers are joblib's
    (loky): they do not run the caller's main script, so a script without an ``if __name__ == "__main__"`` guard
    trains as well, and they stay up between trainings. ``map`` hands them other deterministic work of the same
    training (the combiner's fits). With one worker, when the platform cannot start worker processes, or once a
    worker has failed, everything runs here, with the same result.
    """

    def __init__(self, workers: int) -> None:
        self._parallel: Parallel | None = None
        self._folder: str | None = None
        self._matrix: sp.csr_matrix | None = None
        # Without working process support joblib would fall back to threads, which must not fit liblinear models
        # (see the module docstring): then every fit runs here.
        if workers > 1 and "loky" in BACKENDS:
            self._parallel = Parallel(n_jobs=workers, backend="loky")
            self._parallel.__enter__()

    def __enter__(self) -> FitPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        if self._parallel is not None:
            self._parallel.__exit__(None, None, None)
            self._parallel = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        _parts.clear()  # what joblib ran in this process, when it could not start workers

    def share(self, matrix: sp.csr_matrix) -> None:
        """The matrix every later ``fit`` takes its rows from."""
        self._matrix = matrix
        if self._parallel is None:
            return
        try:
            remove_stale_folders(Path(tempfile.gettempdir()))
            folder = tempfile.mkdtemp(prefix=f"{_FOLDER_PREFIX}{os.getpid()}-")
            self._folder = folder
            for name in ("data", "indices", "indptr"):
                np.save(Path(folder) / f"{name}.npy", getattr(matrix, name))
            np.save(Path(folder) / "shape.npy", np.array(matrix.shape, dtype=np.int64))
        except OSError as exc:  # a full or read-only temporary folder: fit in this process
            log.info("NB-SVM fits run in this process: %s", exc)
            self._shutdown()

    def fit(
        self, rows: np.ndarray | None, y: np.ndarray, n_classes: int, *, cs: Sequence[float], seed: int
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """The NB-SVM of the shared matrix's ``rows`` (all rows for None) with labels ``y`` for each strength in
        ``cs``, as ``nb_svm_fit`` returns it; all their class fits share the workers."""
        matrix = self._matrix
        if matrix is None:
            raise RuntimeError("share a matrix before fitting")
        if self._parallel is None or self._folder is None:
            part = matrix if rows is None else matrix[rows]
            return [nb_svm_fit(part, y, n_classes, c=c, seed=seed) for c in cs]
        picked = None if rows is None else np.ascontiguousarray(rows, dtype=np.int64)
        fits = self._on_workers(
            [delayed(_fit_in_worker)(self._folder, picked, y, k, c, seed) for c in cs for k in range(n_classes)]
        )
        if fits is None:
            return self.fit(rows, y, n_classes, cs=cs, seed=seed)
        return [
            _assemble(list(fits[i * n_classes : (i + 1) * n_classes]), n_classes, matrix.shape[1])
            for i in range(len(cs))
        ]

    def map(self, function: Callable[..., _T], arguments: Sequence[tuple[Any, ...]]) -> list[_T]:
        """``function(*a)`` for each ``a`` in ``arguments``, on the workers when there are some (``function`` must
        be importable, its results picklable), else here. For deterministic work only: the order of the results is
        the order of ``arguments``."""
        results = None if self._parallel is None else self._on_workers([delayed(function)(*a) for a in arguments])
        return [function(*a) for a in arguments] if results is None else results

    def _on_workers(self, calls: list[Any]) -> list[Any] | None:
        """The calls' results from the workers; None, with the pool shut (so all later work runs here), when a
        worker fails: killed (out of memory, say) or unable to read the shared files."""
        assert self._parallel is not None
        try:
            return list(self._parallel(calls))
        except Exception as exc:
            log.warning("NB-SVM worker processes failed (%s); the fits run in this process", exc)
            self._shutdown()
            return None
