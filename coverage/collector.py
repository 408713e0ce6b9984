"""Binds a :class:`~mxdv.coverage.plan.CoveragePlan` to cocotb-coverage.

cocotb-coverage counts every hit; a bin is covered when its count reaches its goal
(``Bin.at_least``), which :meth:`CoverageCollector.percent` and ``uncovered`` apply.

Each plan group is one ``CoverPoint`` named ``<unit>.<group>`` whose bins are the plan's bin
names; a sample is the set of bin names a checked transaction (or an environment event) hit.
cocotb-coverage keeps one global ``coverage_db`` per process, so runs are combined through
the exported YAML files and :func:`merge_files` (cocotb-coverage's ``merge_coverage``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import yaml
from cocotb_coverage.coverage import CoverPoint, coverage_db, merge_coverage

from mxdv.coverage.plan import CoveragePlan, check_hits, percent, uncovered


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
        """Record many samples at once; returns, per sample, the bins it hit first.

        Each distinct set of bins is sampled through cocotb-coverage once and the hit counts
        of its other occurrences are added to the cover points' counters (``_hits``, what
        cocotb-coverage exports): the same database as one sample each, at a fraction of the
        cost (bulk mode samples thousands of transactions per batch)."""
        checked = [frozenset(check_hits(self.plan, names)) for names in hit_sets]
        before = self.hits()
        seen = {n for n, v in before.items() if v > 0}
        news: list[list[str]] = []
        counts: dict[frozenset, int] = {}
        for hit in checked:
            new = [n for n in self.plan.bin_names if n in hit and n not in seen]
            seen.update(new)
            news.append(new)
            if hit:
                counts[hit] = counts.get(hit, 0) + 1
        for hit, n in counts.items():
            self._sample(hit)
            if n > 1:
                for point in self._points:
                    for b in point._hits:
                        if b in hit:
                            point._hits[b] += n - 1
        return news

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
