"""How result tables name a strategy's rows: an ``llm`` row names its endpoint and model, and a
row produced by the scripted stand-in server says so, so that no closure claim rests on it.

Used by ``mxdv eval`` and by the ``mxdv regress`` closure table.
"""
from __future__ import annotations

#: The exact label of rows produced by the scripted stand-in (llm_stimuli/standin.py).
STANDIN_LABEL = "scripted stand-in (not an LLM)"


def _standin_model_id() -> str:
    from mxdv.llm_stimuli.standin import MODEL_ID

    return MODEL_ID


def llm_identity(result: dict) -> tuple[str | None, str | None]:
    """(endpoint, model) of a run's LLM, from its strategy stats or its job options; (None,
    None) for a run that talked to no LLM."""
    stats = result.get("strategy_stats") or {}
    if stats.get("model") or stats.get("endpoint"):
        return stats.get("endpoint"), stats.get("model")
    options = (result.get("job") or {}).get("options") or {}
    if options.get("base_url") and options.get("model"):  # a job that ended before reporting
        return options["base_url"], options["model"]
    return None, None


def is_standin(result: dict) -> bool:
    """True when the run's "LLM" was the scripted stand-in."""
    return llm_identity(result)[1] == _standin_model_id()


def row_label(strategy: str, results: list[dict]) -> str:
    """``strategy`` for runs without an LLM; ``"<strategy>: scripted stand-in (not an LLM)"``
    when any run used the stand-in; else ``"<strategy>: <model> @ <endpoint>"``."""
    if any(is_standin(r) for r in results):
        return f"{strategy}: {STANDIN_LABEL}"
    ids = sorted({llm_identity(r) for r in results if any(llm_identity(r))}, key=str)
    if not ids:
        return strategy
    return f"{strategy}: " + ", ".join(f"{m or 'unknown model'} @ {e or 'unknown endpoint'}" for e, m in ids)
