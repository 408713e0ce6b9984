"""Maps the root folders onto the single import namespace ``mxdv``.

``refmodel/`` is ``mxdv.refmodel``, ``env/`` is ``mxdv.env`` and so on; the core
(CLI, runner, registry) lives in ``mxdv/``. Sub-packages are discovered, so a new
unit's folder needs no entry here.
"""
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
LAYERS = ["refmodel", "env", "sequences", "llm_stimuli", "coverage"]


def _packages():
    package_dir = {"mxdv": "mxdv"}
    packages = ["mxdv"]
    for layer in LAYERS:
        package_dir[f"mxdv.{layer}"] = layer
        for init in sorted((ROOT / layer).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / layer)
            name = ".".join(("mxdv", layer, *rel.parts))
            packages.append(name)
    return packages, package_dir


packages, package_dir = _packages()
setup(packages=packages, package_dir=package_dir, include_package_data=True,
      package_data={"": ["*.md", "*.json", "*.yaml"]})
