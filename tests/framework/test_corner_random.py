"""``corner_random`` knows the field types and nothing of the plan; its draws are valid and
shape-correct for every unit, and it reaches more of a plan than uniform random (no simulator:
coverage is sampled with the unit's own model)."""
import numpy as np
import pytest

from mxdv.schema import Field, TxnSchema
from mxdv.sequences.corner_random import ARRAY_MODES, CornerRandomStrategy, draw_array, draw_transaction
from mxdv.unit import get_unit

VARIANTS = ["quantizer", "quantizer:BLOCK=8", "systolic_array", "systolic_array:R=8,C=8",
            "attention", "attention:D=32", "attention:D=64,KB=4"]


class PlanRead(AssertionError):
    pass


class SchemaOnlyUnit:
    """A unit that hands out its schema and raises on anything that would reveal the plan."""

    def __init__(self, unit):
        self._unit = unit
        self.name = unit.name

    @property
    def schema(self):
        return self._unit.schema

    def __getattr__(self, name):
        raise PlanRead(f"corner_random read unit.{name}")


class PlanlessContext:
    def __init__(self, unit, seed=1):
        self.unit = SchemaOnlyUnit(unit)
        self.rng = np.random.default_rng(seed)

    def uncovered(self):
        raise PlanRead("corner_random called ctx.uncovered()")

    def coverage_percent(self):
        raise PlanRead("corner_random called ctx.coverage_percent()")

    def __getattr__(self, name):
        raise PlanRead(f"corner_random read ctx.{name}")


@pytest.mark.parametrize("variant", VARIANTS)
def test_never_reads_the_plan_and_draws_valid_shaped_transactions(variant):
    unit = get_unit(variant)
    ctx = PlanlessContext(unit)
    txns = CornerRandomStrategy({}).propose(ctx, 120)
    assert len(txns) == 120
    for txn in txns:
        assert unit.schema.normalize(txn) == txn  # every value in its domain, every shape right
        for f in unit.schema.fields:
            if f.shape:
                assert np.asarray(txn[f.name]).shape == f.dims(txn), f.name


SCHEMA = TxnSchema((
    Field("n", "int", "rows", lo=1, hi=5),
    Field("mode", "choice", "a choice", choices=(8, 4)),
    Field("offset", "int", "wide scalar", lo=0, hi=0xFFFF, corners=(0, 3, 0xFFFF)),
    Field("codes", "int", "signed codes", lo=-8, hi=7, shape=("n", 4), corners=(-8, 7, 0)),
    Field("scales", "bits", "codes", width=8, shape=("n",)),
    Field("vals", "bf16", "floats", shape=(6,), corners=(0x0000, 0x7F80, 0x7FC0)),
    Field("sel", "choice", "choice array", choices=(1, 2, 3), shape=(3,)),
))


@pytest.mark.parametrize("mode", ARRAY_MODES)
def test_every_mode_stays_in_the_domain_of_every_kind(mode):
    rng = np.random.default_rng(11)
    for f in SCHEMA.fields:
        if not f.shape:
            continue
        for n in (1, 5):
            dims = f.dims({"n": n})
            for _ in range(40):
                arr = np.asarray(draw_array(f, dims, rng, mode))
                assert arr.shape == dims
                assert all(f.in_domain(int(v)) for v in arr.reshape(-1)), (f.name, mode)


def test_unknown_mode_is_named():
    with pytest.raises(ValueError, match="unknown array mode 'nope'"):
        draw_array(SCHEMA.by_name("codes"), (2, 4), np.random.default_rng(0), "nope")


def test_scalars_reach_their_edges_and_corners():
    rng = np.random.default_rng(2)
    txns = [draw_transaction(SCHEMA, rng) for _ in range(400)]
    offsets = {t["offset"] for t in txns}
    assert {0, 1, 3, 0xFFFE, 0xFFFF} <= offsets and len(offsets) > 20
    assert {1, 5} <= {t["n"] for t in txns}
    flat = [v for t in txns for row in t["codes"] for v in row]
    assert {-8, 7} <= set(flat)
    assert any(all(v == row[0] for v in row) for t in txns for row in t["codes"]), "constant fills appear"


def _content_bins_hit(unit, draw, n, seed):
    rng = np.random.default_rng(seed)
    hit = set()
    for _ in range(n):
        hit |= set(unit.sample(unit.schema.normalize(draw(rng))))
    return hit


@pytest.mark.parametrize("variant, n", [("quantizer", 300), ("attention", 150)])
def test_reaches_more_of_the_plan_than_uniform_random(variant, n):
    """Corner bins only: the attention plan's ``exp2_lut`` group (every entry of the 2^-x tables)
    is hit by moderate values, which uniform draws give more often than corner draws do."""
    unit = get_unit(variant)
    tables = {b.name for g in unit.plan.groups if g.name == "exp2_lut" for b in g.bins}
    corner = _content_bins_hit(unit, lambda r: draw_transaction(unit.schema, r), n, seed=1) - tables
    uniform = _content_bins_hit(unit, lambda r: unit.schema.random(r), n, seed=1) - tables
    assert len(corner) > len(uniform) + 3, (sorted(corner), sorted(uniform))
