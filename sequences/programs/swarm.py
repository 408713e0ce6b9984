"""Random programs from a schema alone: swarm testing over the language's primitives.

:func:`random_program` draws, through a :class:`~mxdv.sequences.programs.sample.Chooser`, which
primitives are enabled for each field (a swarm choice: most are off in any one program, so
programs differ in kind, not only in values) and their parameters. It reads only what the
schema's fields declare (kind, domain, shape, corner values), never a coverage plan.
``hypothesis`` draws programs this way (so Hypothesis can shrink them), and the scripted LLM
stand-in answers with them.
"""
from __future__ import annotations

from mxdv.schema import Field, TxnSchema
from mxdv.sequences.programs.language import BF16_SPECIALS, Domain
from mxdv.sequences.programs.sample import Chooser

#: floor(log2|x|) values at the edges of BF16's range: subnormals, the normal boundary, 0, the top.
BF16_EXP_EDGES = (-133, -131, -128, -127, -126, -125, -64, -1, 0, 1, 64, 125, 126, 127)
BF16_SPREADS = (0, 1, 2, 3, 6, 8, 12, 16, 24, 40, 260)


def _pick(ch: Chooser, items):
    items = list(items)
    return items[ch.index(len(items))]


def _value(ch: Chooser, dom: Domain) -> int:
    """An edge/corner value half the time, else any value of the domain."""
    if dom.choices or ch.coin(0.5):
        return int(_pick(ch, dom.edges()))
    return ch.integer(dom.lo, dom.hi)


def _int_spec(ch: Chooser, dom: Domain, refs: list[str]):
    form = ch.weighted([0.35, 0.25, 0.25, 0.15 if refs else 0.0])
    if form == 0:
        return _value(ch, dom)
    if form == 1 and not dom.choices:
        lo = _value(ch, dom)
        width = _pick(ch, (1, 3, 15, dom.hi - dom.lo))
        if ch.coin(0.5):
            return {"range": [lo, min(dom.hi, lo + width)]}
        return {"range": [max(dom.lo, lo - width), lo]}
    if form == 3:
        return {"ref": _pick(ch, refs), "add": _pick(ch, (0, -1, 1, {"range": [-4, 4]}, {"range": [-16, 0]}))}
    return {"choice": sorted({_value(ch, dom) for _ in range(1 + ch.index(3))})}


def _elements(ch: Chooser, dom: Domain):
    form = ch.weighted([0.3, 0.2, 0.25, 0.1, 0.15])
    if form == 0:
        return "random"
    if form == 1:
        return "corners"
    if form == 2 or dom.choices:
        return {"choice": sorted({_value(ch, dom) for _ in range(1 + ch.index(3))})}
    if form == 3:
        return _value(ch, dom)
    centre = _value(ch, dom)
    half = _pick(ch, (1, 2, 4))
    return {"range": [max(dom.lo, centre - half), min(dom.hi, centre + half)]}


def _index(ch: Chooser, dim, star: bool = True):
    if star and ch.coin(0.3):
        return "*"
    if ch.coin(0.3):
        return "random"
    n = dim if isinstance(dim, int) else 4
    return _pick(ch, (0, -1, min(1, n - 1), ch.index(n)))


def _int_array(ch: Chooser, f: Field) -> dict:
    dom = Domain.of(f)
    spec: dict = {"elements": _elements(ch, dom)}
    roll = ch.weighted([0.8, 0.1, 0.1])
    if roll:
        spec["per"] = ("element", "row", "array")[roll]
    if ch.coin(0.3):
        spec["zero"] = _pick(ch, (0.5, 0.9, 0.97, 1.0))
    if dom.lo < 0 and ch.coin(0.25):
        spec["signs"] = _pick(ch, ("pos", "neg", "alternate", "mixed"))
    ndim = len(f.shape)
    if ndim >= 2 and ch.coin(0.12):
        # A diagonal usually lies in the fixed-size (matrix) axes, and a variable-length axis
        # (a count such as ``kblocks``) is then left to ``fix``: read from the shape, not a plan.
        sized = [i for i, d in enumerate(f.shape) if isinstance(d, int)]
        if 2 <= len(sized) < ndim and ch.coin(0.75):
            first = ch.index(len(sized))
            axes = [sized[first], sized[(first + 1 + ch.index(len(sized) - 1)) % len(sized)]]
        else:
            axes = [ch.index(ndim), ch.index(ndim)]
            if axes[0] == axes[1]:
                axes[1] = (axes[0] + 1) % ndim
        diag: dict = {"axes": axes, "value": _value(ch, dom) if ch.coin(0.5) else dom.clamp(1)}
        if ch.coin(0.7):
            diag["off"] = dom.zero()
        rest = [a for a in range(ndim) if a not in axes]
        if rest and ch.coin(0.6):
            diag["fix"] = {str(rest[0]): 0}
        spec["diag"] = diag
    if ch.coin(0.35):
        spec["set"] = [{"at": [_index(ch, d) for d in f.shape], "value": _value(ch, dom)}
                       for _ in range(1 + ch.index(3))]
    return spec


def _bf16_array(ch: Chooser, f: Field) -> dict:
    lanes = f.shape[-1] if isinstance(f.shape[-1], int) else 4
    spec: dict = {}
    roll = ch.weighted([0.5, 0.3, 0.2])
    if roll == 0:
        spec["max_exp"] = _pick(ch, BF16_EXP_EDGES)
    elif roll == 1:
        lo = ch.integer(-133, 127)
        spec["max_exp"] = {"range": [lo, min(127, lo + _pick(ch, (0, 3, 15, 60)))]}
    if ch.coin(0.4):
        spec["max_mant"] = _pick(ch, (0, 127, 127, 64, {"range": [96, 127]}, {"range": [0, 127]}))
    if ch.coin(0.3):
        spec["max_lane"] = _pick(ch, (0, -1, ch.index(lanes)))
    if ch.coin(0.6):
        spec["spread"] = _pick(ch, BF16_SPREADS)
    if ch.coin(0.2):
        spec["zero"] = _pick(ch, (0.3, 0.8, 1.0))
    if ch.coin(0.15):
        spec["subnormal"] = _pick(ch, (0.3, 1.0))
    if ch.coin(0.3):
        spec["signs"] = _pick(ch, ("pos", "neg", "alternate", "mixed"))
    if ch.coin(0.08):
        spec["all_equal"] = True
    if ch.coin(0.3):
        spec["specials"] = [{"lane": _index(ch, lanes, star=False), "value": _pick(ch, BF16_SPECIALS)}
                            for _ in range(1 + ch.index(2))]
    if ch.coin(0.3):
        spec["ties"] = {"width": _pick(ch, (8, 4)) if ch.coin(0.9) else ch.integer(2, 8),
                        "lanes": _pick(ch, (1, 2, {"range": [1, 4]})),
                        "parity": _pick(ch, ("any", "odd", "even"))}
    return spec or {"spread": 8}


def _refs_before(schema: TxnSchema, name: str) -> list[str]:
    out = []
    for f in schema.fields:
        if f.name == name:
            return out
        if not f.shape and f.kind in ("int", "bits"):
            out.append(f.name)
    return out


def random_field_spec(schema: TxnSchema, f: Field, ch: Chooser):
    """A random spec for one field (the swarm's choice of primitives for it)."""
    if not f.shape:
        return _int_spec(ch, Domain.of(f), _refs_before(schema, f.name))
    if f.kind == "bf16":
        return _bf16_array(ch, f)
    return _int_array(ch, f)


def random_program(schema: TxnSchema, ch: Chooser, count: int = 8, p_scalar: float = 0.6,
                   p_array: float = 0.85) -> dict:
    """A valid (un-normalized) program; each scalar field gets a spec with probability
    ``p_scalar``, each array field with ``p_array`` (a uniformly random array is rarely useful)."""
    fields = {f.name: random_field_spec(schema, f, ch) for f in schema.fields
              if ch.coin(p_array if f.shape else p_scalar)}
    if ch.coin(0.12):
        # the "all extremes" theme a DV engineer writes by hand: every integer array constant
        # at one end of its domain (each array its own end), so extremes meet across operands
        for f in schema.fields:
            if f.shape and f.kind == "int":  # values, not raw codes (a code's end may mean NaN)
                dom = Domain.of(f)
                fields[f.name] = {"elements": dom.lo if ch.coin(0.5) else dom.hi, "per": "array"}
    return {"count": count, "fields": fields}


#: Steps of a numeric nudge (AFL's arithmetic mutations, on a program's literals).
NUDGES = (1, 1, 2, 3, 4, 8, 16, 32, 64)


def _literals(node, path=()):
    """Paths to the literals a nudge can move: integers (booleans excluded), probabilities
    (floats) and special-value names."""
    if isinstance(node, bool):
        return []
    if isinstance(node, (int, float)) or (isinstance(node, str) and node in BF16_SPECIALS):
        return [path]
    if isinstance(node, dict):
        return [p for k in sorted(node) for p in _literals(node[k], path + (k,))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _literals(v, path + (i,))]
    return []


def _copy(node):
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node


def nudge_program(program: dict, ch: Chooser) -> dict:
    """``program`` with one to three literals moved by a small step: an integer by +-1..64 (or
    negated), a probability along [0, 1], a special value to another one. A local move, so a
    program that came near an open bin can be walked closer. The result may
    fall outside a domain; the caller validates it."""
    fields = _copy(program.get("fields", {}))
    paths = _literals(fields)
    for _ in range(1 + ch.index(3) if paths else 0):
        path = paths[ch.index(len(paths))]
        node = fields
        for key in path[:-1]:
            node = node[key]
        old = node[path[-1]]
        if isinstance(old, str):  # another special value at the same lane
            node[path[-1]] = _pick(ch, [v for v in BF16_SPECIALS if v != old])
        elif isinstance(old, float):  # a probability: to an end, or a step along [0, 1]
            step = _pick(ch, (-1.0, -0.25, -0.1, 0.1, 0.25, 1.0))
            node[path[-1]] = round(min(1.0, max(0.0, old + step)), 3)
        elif ch.coin(0.1):
            node[path[-1]] = -old
        else:
            step = NUDGES[ch.index(len(NUDGES))]
            node[path[-1]] = old + (step if ch.coin(0.5) else -step)
    return {"count": program.get("count", 8), "fields": fields}


def mutate_program(schema: TxnSchema, program: dict, ch: Chooser) -> dict:
    """``program`` with one or two of its fields given a new random spec or left random
    (a structure-aware mutation: the other fields keep what made the program interesting)."""
    fields = dict(program.get("fields", {}))
    for _ in range(1 + ch.index(2)):
        f = schema.fields[ch.index(len(schema.fields))]
        old, fresh = fields.get(f.name), random_field_spec(schema, f, ch)
        roll = ch.index(4)
        if roll == 0:
            fields.pop(f.name, None)
        elif roll == 1 and f.shape and isinstance(old, dict) and isinstance(fresh, dict) and fresh:
            # keep the spec, take one primitive of a fresh one (add a special, a set entry ...)
            key = sorted(fresh)[ch.index(len(fresh))]
            fields[f.name] = {**old, key: fresh[key]}
        else:
            fields[f.name] = fresh
    return {"count": program.get("count", 8), "fields": fields}


__all__ = ["random_program", "random_field_spec", "mutate_program", "nudge_program", "BF16_EXP_EDGES"]
