"""Stimulus strategies (``random``, ``constrained``, ``hypothesis``, ``replay``) and the registry."""
from mxdv.sequences.registry import BatchStrategy, Strategy, get_strategy, register_strategy, strategy_names

__all__ = ["Strategy", "BatchStrategy", "register_strategy", "get_strategy", "strategy_names"]
