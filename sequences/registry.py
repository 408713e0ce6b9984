"""Stimulus strategies: the interface and the registry open to users.

A strategy gets the unit, the coverage state and a budget through a
:class:`~mxdv.env.run_context.RunContext` and produces transactions. Two ways to write one:

* subclass :class:`BatchStrategy` and implement ``propose(ctx, n)`` (a list of ``n``
  transactions, plain dicts following ``ctx.unit.schema``); or
* subclass :class:`Strategy` and implement ``async run(ctx)`` for full control (the
  ``hypothesis`` strategy does this to shrink failures).

Register with the :func:`register_strategy` decorator, or expose the class under the
entry-point group ``mxdv.strategies`` of an installed package. Strategies run inside the
simulator's Python, so a module that is not installed is named with ``--plugin`` (a dotted
module name or a ``.py`` path) and imported there too.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from abc import ABC, abstractmethod
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from mxdv import columns

if TYPE_CHECKING:  # pragma: no cover
    from mxdv.env.run_context import RunContext

_REGISTRY: dict[str, type["Strategy"]] = {}
BUILTIN_MODULES = ("mxdv.sequences.random_strategy", "mxdv.sequences.constrained",
                   "mxdv.sequences.corner_random",
                   "mxdv.sequences.hypothesis_strategy", "mxdv.sequences.replay",
                   "mxdv.llm_stimuli.strategy")


class Strategy(ABC):
    name: str = ""
    #: One line for `mxdv strategies`.
    summary: str = ""
    #: Whether this strategy may call the coverage plan's hints (constrained-random recipes).
    #: Only ``constrained`` does; a strategy that claims to find its own way must not, and the
    #: test bench enforces it (a hint called otherwise raises ``HintNotAllowed``).
    reads_hints: bool = False

    def __init__(self, options: dict | None = None):
        self.options = dict(options or {})
        self.stats: dict = {}

    @abstractmethod
    async def run(self, ctx: "RunContext") -> None:
        """Produce and execute transactions until ``ctx.done``."""


class BatchStrategy(Strategy):
    """Propose ``batch_size`` transactions at a time; the base class executes them."""

    batch_size = 16

    @abstractmethod
    def propose(self, ctx: "RunContext", n: int) -> list[dict]:
        ...

    #: A strategy that can draw a whole batch as arrays overrides :meth:`propose_columns`;
    #: bulk mode's columnar path (``ctx.columnar``) then asks for columns, not dicts.
    def propose_columns(self, ctx: "RunContext", n: int):
        """``n`` transactions as a ``mxdv.columns.Columns`` batch (None: not supported)."""
        return None

    async def run(self, ctx: "RunContext") -> None:
        size = int(self.options.get("batch_size", ctx.cfg.batch_size or self.batch_size))
        while not ctx.done:
            n = min(size, ctx.budget_left)
            cols = self.propose_columns(ctx, n) if getattr(ctx, "columnar", False) else None
            if cols is not None:
                await ctx.execute(columns.check(cols))
            else:
                await ctx.execute([ctx.unit.schema.normalize(t) for t in self.propose(ctx, n)])


def register_strategy(name: str):
    """Class decorator: ``@register_strategy("mine")`` makes ``--strategy mine`` work."""

    def deco(cls):
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise TypeError(f"register_strategy({name!r}): {cls!r} is not a Strategy subclass")
        existing = _REGISTRY.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"strategy name {name!r} is already taken by {existing.__module__}.{existing.__qualname__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_builtins() -> None:
    for mod in BUILTIN_MODULES:
        importlib.import_module(mod)
    for ep in entry_points(group="mxdv.strategies"):
        cls = ep.load()
        if ep.name not in _REGISTRY:
            register_strategy(ep.name)(cls)


def load_plugins(plugins: list[str]) -> None:
    """Import user modules (dotted names or .py file paths) so their strategies register."""
    for plugin in plugins:
        if plugin.endswith(".py"):
            path = Path(plugin).resolve()
            if not path.exists():
                raise ValueError(f"plugin file {plugin!r} does not exist (--plugin)")
            mod_name = f"mxdv_plugin_{path.stem}"
            if mod_name in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            spec.loader.exec_module(module)
        else:
            try:
                importlib.import_module(plugin)
            except ImportError as exc:
                raise ValueError(f"plugin module {plugin!r} cannot be imported (--plugin): {exc}") from exc


def strategy_names(plugins: list[str] | None = None) -> list[str]:
    _load_builtins()
    load_plugins(plugins or [])
    return sorted(_REGISTRY)


def get_strategy(name: str) -> type[Strategy]:
    _load_builtins()
    if name not in _REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; known strategies: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
