"""Every unit's coverage plan: the written plan.md matches the model, bins are explained,
and every hint (constrained-random recipe) really hits the bin it is written for."""
import numpy as np
import pytest

from mxdv.unit import get_unit, unit_names

UNITS = unit_names()


@pytest.mark.parametrize("name", UNITS)
def test_plan_md_is_rendered_from_the_model(name):
    unit = get_unit(name)
    written = (unit.rtl_dir.parent.parent / "coverage" / name / "plan.md").read_text()
    assert written == unit.plan.to_markdown() + "\n", f"run `mxdv plan --unit {name} --write`"


@pytest.mark.parametrize("name", UNITS)
def test_every_bin_is_explained(name):
    for b in get_unit(name).plan.bins:
        assert len(b.meaning) > 10 and len(b.why) > 10, b.name


@pytest.mark.parametrize("name", UNITS)
def test_hints_hit_their_bins(name):
    unit = get_unit(name)
    rng = np.random.default_rng(7)
    missing = []
    for group in unit.plan.groups:
        if group.environment:
            continue
        for b in group.bins:
            assert b.hint is not None, f"{b.name} has no hint"
            hit = False
            for _ in range(30):
                txn = unit.schema.normalize(b.hint(rng))
                if b.name in set(unit.sample(txn)):
                    hit = True
                    break
            if not hit:
                missing.append(b.name)
    assert not missing, f"hints that never hit their bin in 30 draws: {missing}"


@pytest.mark.parametrize("name", UNITS)
def test_random_transactions_sample_only_known_bins(name):
    unit = get_unit(name)
    rng = np.random.default_rng(3)
    known = set(unit.plan.bin_names)
    for _ in range(200):
        assert set(unit.sample(unit.schema.random(rng))) <= known
