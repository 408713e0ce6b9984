"""The random strategy's ``pin`` option (used by scripts/sim_throughput.py)."""
from types import SimpleNamespace

import numpy as np
import pytest

from mxdv.sequences.random_strategy import RandomStrategy
from mxdv.unit import get_unit


def ctx_for(unit):
    return SimpleNamespace(unit=get_unit(unit), rng=np.random.default_rng(5))


def test_pin_fixes_fields_and_keeps_shapes():
    ctx = ctx_for("attention")
    txns = RandomStrategy({"pin": {"n_rows": 1, "n_keys": 7}}).propose(ctx, 20)
    assert {(t["n_rows"], t["n_keys"]) for t in txns} == {(1, 7)}
    assert all(len(t["k_codes"]) == 7 and len(t["q_codes"]) == 1 for t in txns)
    assert all(ctx.unit.schema.normalize(t) == t for t in txns)
    free = RandomStrategy({}).propose(ctx, 40)
    assert len({t["n_keys"] for t in free}) > 1


def test_pin_names_unknown_fields():
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['n_key'\]"):
        RandomStrategy({"pin": {"n_key": 3}}).propose(ctx_for("attention"), 1)
