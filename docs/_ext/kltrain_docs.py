"""Sphinx extension of the kltrain site.

- ``builder-inited``: puts the executed notebooks in ``docs/notebooks/`` (``examples/render.py``
  executes each once per change of the code; the tests share that execution).
- ``validation-checks`` directive: the validation suite's checks, read from its source
  (:func:`validation.catalog.suite_checks`): claim, tolerance, negative control.
- ``autodoc-process-docstring``: the plain-text docstrings made valid reStructuredText
  (``plaintext_rst.rst_safe``: ``|x|`` escaped, hand-laid indented blocks kept as literal blocks).
- ``builder-inited``: a public module, class or function without a docstring is a warning
  (``public_api.missing_docstrings``; ``-W`` fails the build on it).
"""

from __future__ import annotations

import sys
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)
DOCS = Path(__file__).resolve().parents[1]
EXAMPLES = DOCS.parent / "examples"
NOTEBOOKS = DOCS / "notebooks"


def put_notebooks(app) -> None:
    """Executed copies of examples/NN_*.py as docs/notebooks/NN_*.ipynb (rewritten only when changed)."""
    import nbformat
    sys.path.insert(0, str(EXAMPLES))
    import render

    NOTEBOOKS.mkdir(exist_ok=True)
    wanted = set()
    for path in render.notebooks():
        nb, seconds = render.executed(path, timeout=600)  # a first numba compile may take minutes
        target = NOTEBOOKS / f"{path.stem}.ipynb"
        wanted.add(target)
        text = nbformat.writes(nb)
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
        logger.info(f"notebook {path.name}: executed in {seconds:.0f} s")
    for stale in set(NOTEBOOKS.glob("*.ipynb")) - wanted:
        stale.unlink()


def _entry(*children) -> nodes.entry:
    return nodes.entry("", nodes.paragraph("", "", *children))


def _table(headers: list[str], rows: list[list], widths: list[int]) -> nodes.table:
    table = nodes.table(classes=["validation-checks"])
    group = nodes.tgroup(cols=len(headers))
    table += group
    group.extend(nodes.colspec(colwidth=w) for w in widths)
    head = nodes.thead()
    head += nodes.row("", *(_entry(nodes.Text(h)) for h in headers))
    body = nodes.tbody()
    body.extend(nodes.row("", *(_entry(*cell) for cell in row)) for row in rows)
    group += head
    group += body
    return table


class ValidationChecks(SphinxDirective):
    """A table per part of the suite: check, paper, claim, tolerance, negative control."""

    def run(self):
        from validation.catalog import suite_checks

        out = []
        for part, checks in suite_checks():
            rows = []
            for c in checks:
                ref = addnodes.pending_xref("", nodes.literal(c.function, c.function.rpartition(".")[2]),
                                            refdomain="py", reftype="func", reftarget=c.function,
                                            refexplicit=True, refwarn=True)
                rows.append([[nodes.strong(c.name, c.name), nodes.Text(" ("), ref, nodes.Text(")")],
                             [nodes.Text(c.paper)], [nodes.Text(c.claim)],
                             [nodes.Text("≤ "), nodes.literal(c.tolerance, c.tolerance)],
                             [nodes.Text(c.control_what or "—")]])
            section = nodes.rubric(part, part)
            out += [section, _table(["check", "paper", "claim (measured)", "tolerance", "negative control (must fail)"],
                                    rows, [22, 12, 34, 10, 22])]
        return out


def warn_missing_docstrings(app) -> None:
    """A public module, class or function of ours with no docstring is a warning."""
    import public_api
    from sphinx.ext.autodoc.mock import mock

    with mock(app.config.autodoc_mock_imports):  # the same stand-ins for absent optional imports as autodoc
        missing = public_api.missing_docstrings(public_api.public_modules(app.config.kltrain_packages))
    for name in missing:
        logger.warning(f"{name} has no docstring: say what it is (the API reference shows it)",
                       type="kltrain", subtype="docstring")


def make_rst_safe(app, what, name, obj, options, lines) -> None:
    from plaintext_rst import rst_safe
    lines[:] = rst_safe(lines)


def napoleon_except_attributes(app) -> None:
    """Napoleon reads a property's "X: text" first line as "type: description"; ours are prose, so skip them."""
    from sphinx.ext import napoleon

    for listener in list(app.events.listeners.get("autodoc-process-docstring", [])):
        if listener.handler is napoleon._process_docstring:
            app.disconnect(listener.id)

    def process(app, what, name, obj, options, lines):
        if what not in ("attribute", "property", "data"):
            napoleon._process_docstring(app, what, name, obj, options, lines)

    app.connect("autodoc-process-docstring", process)


def setup(app):
    app.add_config_value("kltrain_packages", ("kltrain", "toyproblems", "validation"), "env")
    app.connect("builder-inited", put_notebooks)
    app.connect("builder-inited", napoleon_except_attributes)
    app.connect("builder-inited", warn_missing_docstrings)
    app.connect("autodoc-process-docstring", make_rst_safe, priority=400)  # before napoleon (500)
    app.add_directive("validation-checks", ValidationChecks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
