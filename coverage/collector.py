"""Binds a :class:`~mxdv.coverage.plan.CoveragePlan` to cocotb-coverage.

cocotb-coverage counts every hit; a bin is covered when its count reaches its goal
(``Bin.at_least``), which :meth:`CoverageCollector.percent` and ``uncovered`` apply.

Each plan group is one ``CoverPoint`` named ``<unit>.<group>`` whose bins are the plan's bin
names; a sample is the set of bin names a checked transaction (or an environment event) hit.
cocotb-coverage keeps one global ``coverage_db`` per process, so runs are combined through
the exported YAML files and :func:`merge_files` (cocotb-coverage's ``merge_coverage``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

import yaml
from cocotb_coverage.coverage import CoverPoint, coverage_db, merge_coverage

from mxdv.coverage.plan import CoveragePlan, check_hits, hit_matrix, percent, uncovered


@dataclass
class BatchSample:
    """What a batch of ``n`` samples did to the database: ``new_at[i]``, the bins sample
    ``i`` hit for the first time (plan order; samples that hit none are left out);
    ``goal_rows``, ``(i, bin)`` for every bin that reached its goal (``Bin.at_least``) at
    sample ``i``, in sample order, so coverage after each sample of the batch is known exactly."""

    n: int
    new_at: dict[int, list[str]]
    goal_rows: list[tuple[int, str]]

    @property
    def new_bins(self) -> list[list[str]]:
        """Per sample, the bins it hit first (empty lists included)."""
        return [self.new_at.get(i, []) for i in range(self.n)]


class CoverageCollector:
    def __init__(self, plan: CoveragePlan):
        self.plan = plan
        self._points = []

        def sample(hit: frozenset) -> None:  # the decorators do the work
            return None

        for group in plan.groups:
            point = CoverPoint(
                f"{plan.unit}.{group.name}",
                xf=lambda hit: hit,
                rel=lambda hit, bin_name: bin_name in hit,
                bins=[b.name for b in group.bins],
                inj=False,
            )
            self._points.append(point)
            sample = point(sample)
        self._sample = sample

    def sample(self, hit_names: Iterable[str]) -> list[str]:
        """Record one sample; returns the bins it hit for the first time."""
        hit = check_hits(self.plan, hit_names)
        if not hit:
            return []
        before = self.hits()
        self._sample(frozenset(hit))
        return [b.name for b in self.plan.bins if b.name in hit and before[b.name] + 1 == b.at_least]

    def sample_batch(self, hit_sets: list[Iterable[str]]) -> list[list[str]]:
        """Record many samples at once; returns, per sample, the bins it hit first."""
        return self.sample_rows(hit_sets).new_bins

    def sample_rows(self, hit_sets: list[Iterable[str]]) -> "BatchSample":
        """Record many samples (one set of bin names each) at once: see :class:`BatchSample`.

        The union of the batch's bins is sampled through cocotb-coverage once and the other
        hits are added to the cover points' counters (``_hits``, what cocotb-coverage exports;
        its cover points are independent, each bin's count is all it keeps): the same database
        as one sample each, at a fraction of the cost (bulk mode samples thousands of
        transactions per batch)."""
        return self.sample_matrix(*hit_matrix(self.plan, hit_sets))

    def sample_matrix(self, names: tuple[str, ...], matrix: np.ndarray) -> "BatchSample":
        """Record ``matrix.shape[0]`` samples given as a boolean matrix: sample ``i`` hit bin
        ``names[j]`` where ``matrix[i, j]`` (the columnar path's coverage, no set per sample)."""
        matrix = np.asarray(matrix, dtype=bool)
        if matrix.ndim != 2 or matrix.shape[1] != len(names):
            raise ValueError(f"sample_matrix: matrix of shape {matrix.shape} for {len(names)} bin names")
        check_hits(self.plan, names)
        n = matrix.shape[0]
        before = self.hits()
        out = BatchSample(n, {}, [])
        if not n:
            return out
        present = np.flatnonzero(matrix.any(axis=0))
        goal = {b.name: b.at_least for b in self.plan.bins}
        for j in present.tolist():
            name, column = names[j], matrix[:, j]
            had = before.get(name, 0)
            if had == 0:
                out.new_at.setdefault(int(np.argmax(column)), []).append(name)
            if had < goal[name]:
                reach = np.flatnonzero(np.cumsum(column) + had >= goal[name])
                if reach.size:
                    out.goal_rows.append((int(reach[0]), name))
        order = {nm: k for k, nm in enumerate(self.plan.bin_names)}
        for row in out.new_at.values():
            row.sort(key=order.__getitem__)
        out.goal_rows.sort(key=lambda rn: (rn[0], order[rn[1]]))
        counts = matrix[:, present].sum(axis=0).tolist()
        hit = {names[j]: c for j, c in zip(present.tolist(), counts)}
        self._sample(frozenset(hit))  # every bin the batch hit, once; then the other hits
        for point in self._points:
            for b in point._hits:
                if hit.get(b, 0) > 1:
                    point._hits[b] += hit[b] - 1
        return out

    def hits(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for point in self._points:
            out.update({str(k): int(v) for k, v in point.detailed_coverage.items()})
        return out

    def percent(self) -> float:
        """Bins at their goal (``Bin.at_least`` hits), in percent of the plan."""
        return percent(self.plan, self.hits())

    def uncovered(self) -> list[str]:
        """Bins below their goal."""
        return [b.name for b in uncovered(self.plan, self.hits())]

    def export(self, path: Path) -> Path:
        """Write this process's coverage database (cocotb-coverage YAML)."""
        coverage_db.export_to_yaml(str(path))
        return path


def merge_files(out: Path, files: list[Path]) -> Path:
    """Merge cocotb-coverage YAML exports into ``out`` (bins' hit counts are summed)."""
    if not files:
        raise ValueError("merge_files: no coverage files given (files)")
    merge_coverage(lambda *_: None, str(out), *[str(f) for f in files])
    return out


def load_hits(path: Path, unit: str) -> dict[str, int]:
    """Per-bin hit counts of one unit from an exported or merged YAML file."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    hits: dict[str, int] = {}
    for name, item in data.items():
        if name.startswith(unit + ".") and "bins:_hits" in item:
            hits.update({str(k): int(v) for k, v in item["bins:_hits"].items()})
    return hits
