"""scripts/inject_bugs.py: a mutant that breaks the build, and a regression that ends without a
summary, are reported as such (not counted as caught, and the script goes on)."""
import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("inject_bugs", Path(__file__).resolve().parents[2] / "scripts" / "inject_bugs.py")
inject_bugs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(inject_bugs)


def res(**kw):
    return {"mismatches": 0, "protocol_violations": [], "error": None, **kw}


def test_build_failures_are_invalid_not_caught():
    assert inject_bugs.build_failed([res(error="BuildFailed: syntax error"), res(error="BuildFailed: x")])
    assert not inject_bugs.build_failed([res(error="BuildFailed: x"), res(mismatches=2)])
    assert not inject_bugs.build_failed([])
    assert len(inject_bugs.caught_by([res(), res(mismatches=1), res(error="DrainTimeout: hung")])) == 2


def test_a_regression_without_summary_raises_nosummary(tmp_path, monkeypatch):
    """A regression that dies (here: an unknown unit) leaves its log and raises NoSummary."""
    with pytest.raises(inject_bugs.NoSummary, match="exit 2"):
        inject_bugs.run_suite("no_such_unit", tmp_path / "out", 1, 1.0, None, tmp_path / "build")
    assert (tmp_path / "out" / "regress.log").read_text().strip()
