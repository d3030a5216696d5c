"""Sphinx configuration of the kltrain documentation site.

Build: ``python3 -m pip install -e ".[docs]" && python3 -m sphinx -W --keep-going docs docs/_build/html``.
Why Sphinx (and not MkDocs): the docstrings are reStructuredText (``:class:``, ``:func:``, ``:mod:``
roles, numpy-style sections), which autodoc reads as they are, and ``nitpicky`` turns every broken
cross-reference into a warning, which ``-W`` turns into a failed build. Notebooks: MyST-NB renders
the notebooks that ``examples/render.py`` executed (once per change of the code, shared with the
tests). Math: MathJax 3 from the ``sphinx-mathjax-offline`` wheel, so no page loads anything from
the network.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(ROOT), str(DOCS / "_ext")]
os.environ.setdefault("MPLBACKEND", "Agg")
# The CUDA kernels are documented as numba-cuda dispatchers (no GPU needed), whatever the caller set:
# under the simulator a kernel is no function, so the docstrings' references to it would not resolve.
os.environ["NUMBA_ENABLE_CUDASIM"] = "0"

import importlib.util  # noqa: E402

import kltrain  # noqa: E402

project = "kltrain"
author = "kltrain contributors"
copyright = "the kltrain contributors"
release = version = kltrain.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3.2 copied into _static/mathjax: no CDN
    "myst_nb",
    "kltrain_docs",  # the notebooks, the validation-check table, missing docstrings as warnings
]

exclude_patterns = ["_build", "_ext", "_templates", "README.md", "**/.ipynb_checkpoints"]
templates_path = ["_templates"]
html_theme = "furo"  # system fonts only: the theme fetches nothing from the web
html_title = f"kltrain {release}"
html_static_path = ["_static"]
html_favicon = "_static/kltrain.svg"

# -- every reference must resolve: nitpicky + `-W` fail the build on a broken one ------------------
nitpicky = True
nitpick_ignore_regex = [
    # names of other libraries (no intersphinx: the build never goes to the network)
    (r"py:.*", r"(numpy|np|numba|scipy|matplotlib|dask|distributed|torch|jax|optax|tqdm|threadpoolctl"
               r"|mlxtend|nbformat|argparse|pathlib|concurrent|threading|collections|typing|types|os)(\..*)?"),
    (r"py:.*", r"(NDArray|ArrayLike|Generator|Figure|Axes|Path|Namespace|ArgumentParser|Client)"),
    # Sphinx mis-splits a dataclass field's signature "x: list[tuple[str, str]] = <factory>" (validation.report)
    (r"py:class", r"list\[tuple\[str"),
]

# -- API reference ----------------------------------------------------------------------------------
# optional dependencies that a public module may import: stand-ins when absent, so that the reference
# of kltrain.kernels.distributed, validation.gpu or a kltrain.torch / kltrain.jax builds without them
from public_api import OPTIONAL_IMPORTS  # noqa: E402

autodoc_mock_imports = [name for name in OPTIONAL_IMPORTS if importlib.util.find_spec(name) is None]
autosummary_generate = True
autosummary_ignore_module_all = False  # a module's __all__, where it has one, is its public API
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "signature"
python_use_unqualified_type_names = True  # "Point", not "kltrain._types.Point", in signatures
add_module_names = False
# the public API's type aliases by name (documented on the API page), not expanded into numpy's unions
autodoc_type_aliases = {name: f"kltrain._types.{name}" for name in ("Point", "TauLike", "RngLike", "Estimator")}
autodoc_preserve_defaults = True
autodoc_class_signature = "separated"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_param = False  # "name : what it is" lines: the text after the colon is prose, not a type to link
napoleon_use_rtype = False

# -- MyST and MyST-NB -------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # kltrain_docs puts executed notebooks in docs/notebooks/ (examples/render.py)
nb_merge_streams = True
