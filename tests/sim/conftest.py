"""Simulation tests: every run goes through mxdv.runs (the same path as `mxdv run`).

Builds are cached in build/sim and shared by the xdist workers (a file lock serializes the
first build of each unit variant), so each simulator builds each variant once per checkout.
"""
import pytest

from mxdv.env.run_config import RunConfig
from mxdv.runs import run_one


@pytest.fixture
def run_sim(tmp_path):
    def _run(unit, strategy="constrained", sim="verilator", seed=1, budget=200, test="StrategyRun", **kw):
        cfg = RunConfig(unit=unit, strategy=strategy, sim=sim, seed=seed, budget=budget,
                        run_dir=str(tmp_path / f"{unit.replace(':', '_')}-{strategy}-{sim}-{test}-s{seed}"), **kw)
        return run_one(cfg, test=test)
    return _run


def check_clean(r: dict) -> None:
    """A run that passed: no error, no mismatch, no protocol violation, every transaction
    checked or dropped by a reset."""
    assert r["error"] is None, r["error"]
    assert r["mismatches"] == 0, r
    assert r["protocol_violations"] == []
    assert r["checked"] + r["dropped"] == r["transactions"]


@pytest.fixture
def assert_clean():
    return check_clean
