"""The public names of kltrain, toyproblems and validation, and those without a docstring.

Shared by the docs build (``kltrain_docs``: a missing docstring is a build warning, so ``-W`` fails)
and by ``tests/test_site.py`` (the same check without Sphinx). Public means: a module none of whose
dotted parts starts with ``_``; in it, the names of its ``__all__`` where it has one, otherwise
the classes and functions it defines whose names do not start with ``_``. The API reference
(autosummary, ``docs/api.md``) documents the same names.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

PACKAGES = ("kltrain", "toyproblems", "validation")
# optional dependencies a public module may import (a [cuda], [distributed], [peers] extra, or a
# kltrain.torch / kltrain.jax); the docs mock them when absent (conf.py), this check skips the module
OPTIONAL_IMPORTS = ("dask", "distributed", "torch", "jax", "jaxlib", "optax", "numba_cuda", "cupy")


def public_modules(packages=PACKAGES) -> list[str]:
    """Every public module of ``packages``, packages first, in import-name order."""
    names = []
    for top in packages:
        package = importlib.import_module(top)
        names.append(top)
        names += [m.name for m in pkgutil.walk_packages(package.__path__, f"{top}.")
                  if not any(part.startswith("_") for part in m.name.split(".")[1:])]
    return names


def public_members(module: ModuleType) -> dict[str, object]:
    """The public classes and functions of ``module`` (see the module docstring)."""
    listed = getattr(module, "__all__", None)
    members = {}
    for name, obj in vars(module).items():
        if inspect.ismodule(obj) or not callable(obj):
            continue
        if listed is not None:
            if name in listed:
                members[name] = obj
        elif not name.startswith("_") and getattr(obj, "__module__", None) == module.__name__:
            members[name] = obj
    return members


def has_docstring(obj: object) -> bool:
    """True when ``obj`` has a docstring of its own (a dataclass's generated ``Name(field: type, ...)`` is none)."""
    doc = getattr(obj, "__doc__", None) or ""
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return False
    return bool(doc.strip())


def import_public(name: str) -> ModuleType | None:
    """The module, or None when it needs an absent optional dependency (any other failure raises)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] in OPTIONAL_IMPORTS:
            return None
        raise


def missing_docstrings(modules: list[str]) -> list[str]:
    """The public modules, classes and functions among ``modules`` that have no docstring."""
    missing = []
    for name in modules:
        module = import_public(name)
        if module is None:
            continue
        if not has_docstring(module):
            missing.append(name)
        missing += [f"{name}.{member}" for member, obj in public_members(module).items() if not has_docstring(obj)]
    return missing
