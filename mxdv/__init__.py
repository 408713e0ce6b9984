"""mxdv: verification and stimulus generation for an open MX LLM-inference accelerator."""

from pathlib import Path

#: Repository root (holds ``rtl/``); the package is installed in editable mode.
REPO_ROOT = Path(__file__).resolve().parent.parent
