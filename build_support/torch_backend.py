"""PEP 517 build backend: setuptools, compiling ``gvae_fast._C`` against the torch it will run with.

By default pip builds in an isolated environment and would download a torch into it; a C++
extension compiled against that torch need not load into the torch of the environment it is
installed into (no stable C++ ABI across torch builds). So when the target environment, the
interpreter pip runs this backend with, already has torch, its site-packages is appended to
the build's ``sys.path`` (after the build environment's own packages) and no torch is
requested. Only where no torch is installed at all is torch requested like any build
dependency; gvae_fast then checks the recorded build-time torch at import and, on a mismatch,
falls back to the reference operators with a warning. ``pip install --no-build-isolation .``
bypasses all of this and builds against the running torch directly.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 - the PEP 517 hooks this backend passes through

# Run with -I: pip puts the isolated build environment on PYTHONPATH, which -I ignores.
_FIND_TORCH = (
    "import importlib.util as u; s = u.find_spec('torch'); print(s.submodule_search_locations[0] if s else '')"
)


def _target_site_packages() -> str | None:
    found = subprocess.run(
        [sys.executable, "-I", "-c", _FIND_TORCH], capture_output=True, text=True, check=False
    ).stdout.strip()
    return os.path.dirname(found) if found else None


def _has_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


if not _has_torch():
    _site = _target_site_packages()
    if _site is not None:
        sys.path.append(_site)


def get_requires_for_build_wheel(config_settings: dict | None = None) -> list[str]:
    """Torch only where neither the build nor the target environment has one."""
    if not _has_torch():
        return ["torch"]  # setup.py cannot even run without it; pip asks again afterwards
    return _setuptools.get_requires_for_build_wheel(config_settings)


def get_requires_for_build_editable(config_settings: dict | None = None) -> list[str]:
    """As :func:`get_requires_for_build_wheel`, for ``pip install -e .``."""
    if not _has_torch():
        return ["torch"]
    return _setuptools.get_requires_for_build_editable(config_settings)
