"""The documentation site builds without a warning, and a browser sees it whole.

- Every public module, class and function has a docstring (``docs/_ext/public_api.py``; the build
  warns on the same list).
- The plain-text docstrings become valid reStructuredText (``docs/_ext/plaintext_rst.py``).
- The validation page lists every check of the suite, each with a negative control.
- The Sphinx build (``python -m sphinx -W --keep-going docs docs/_build/html``) has no warning: a
  broken cross-reference, a missing docstring or a failing notebook cell fails it. It runs where
  Sphinx is importable by ``$KLTRAIN_DOCS_PYTHON`` (default: this interpreter).
- Headless Chromium opens the index, the tour and an API page: none is blank, logs a console error,
  requests anything from the web or shows unrendered math (``docs/browser_check.py``).

The build executes no notebook that ``tests/test_examples.py`` already ran on the same sources: this
file sorts after it, and both take the executions from ``examples/render.py``'s store.

The build and the browser check are skipped, with the reason, where Sphinx or Chromium is missing;
with ``KLTRAIN_REQUIRE_DOCS=1`` (set by ``.ci/run``) they fail instead.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path[:0] = [str(DOCS / "_ext"), str(DOCS)]
import browser_check  # noqa: E402
import plaintext_rst  # noqa: E402
import public_api  # noqa: E402

REQUIRED = os.environ.get("KLTRAIN_REQUIRE_DOCS") == "1"
DOCS_PYTHON = os.environ.get("KLTRAIN_DOCS_PYTHON", sys.executable)
SITE = DOCS / "_build" / "html"


def unavailable(reason: str):
    """Skip with ``reason``, or fail where the CI requires the docs checks."""
    if REQUIRED:
        pytest.fail(f"KLTRAIN_REQUIRE_DOCS=1 but {reason}")
    pytest.skip(reason)


# -- docstrings --------------------------------------------------------------------------------------

def test_every_public_name_has_a_docstring():
    modules = public_api.public_modules()
    assert {"kltrain.regularized", "toyproblems.losses", "validation.theorems"} <= set(modules)
    assert not any(".__main__" in m or "._" in m for m in modules)
    assert public_api.missing_docstrings(modules) == []


def test_a_missing_docstring_is_found(monkeypatch):
    """Negative control: an undocumented function, class and module, and a dataclass's generated doc."""
    from dataclasses import dataclass

    fake = types.ModuleType("kltrain_fake_module")

    def undocumented():
        pass

    @dataclass
    class Generated:
        x: int

    for obj in (undocumented, Generated):
        obj.__module__ = fake.__name__
    fake.undocumented, fake.Generated = undocumented, Generated
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    assert public_api.missing_docstrings([fake.__name__]) == [
        "kltrain_fake_module", "kltrain_fake_module.undocumented", "kltrain_fake_module.Generated"]


def test_a_module_needing_an_absent_optional_dependency_is_skipped_and_any_other_failure_raises(
        tmp_path, monkeypatch):
    (tmp_path / "needs_torch_probe.py").write_text('"""Doc."""\nimport torch_absent_probe\n')
    (tmp_path / "broken_probe.py").write_text('"""Doc."""\nimport no_such_module_probe\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(public_api, "OPTIONAL_IMPORTS", ("torch_absent_probe",))
    assert public_api.missing_docstrings(["needs_torch_probe"]) == []
    with pytest.raises(ModuleNotFoundError, match="no_such_module_probe"):
        public_api.missing_docstrings(["broken_probe"])


def test_plain_text_docstrings_become_valid_rst():
    lines = ["F = |x − y|², ``|a|`` and :math:`|x|` stay.", "", "Paper symbols:", "",
             "    f    ``loss``", "    τ    ``tau``", "after"]
    assert plaintext_rst.rst_safe(lines) == [
        "F = \\|x − y\\|², ``|a|`` and :math:`|x|` stay.", "", "Paper symbols::", "",
        "    f    loss", "    τ    tau", "", "after"]
    math = [".. math:: |x|^2", "   + |y|", "", "text |z|"]
    assert plaintext_rst.rst_safe(math) == [".. math:: |x|^2", "   + |y|", "", "text \\|z\\|"]


# -- the validation page -------------------------------------------------------------------------------

def test_the_docs_list_every_check_of_the_suite_with_its_negative_control():
    from validation import estimators, theorems
    from validation.catalog import suite_checks

    listed = [c for _, checks in suite_checks() for c in checks]
    functions = {f"{f.__module__}.{f.__name__}" for f in theorems.ALL + estimators.ALL}
    assert functions <= {c.function for c in listed}
    for check in listed:
        assert check.name and check.paper and check.claim and check.tolerance, check
        assert check.control_what, f"{check.function} declares no negative control"


def test_the_catalog_reads_f_strings_as_written():
    from validation.catalog import checks_in_source

    source = ('def check():\n    return CheckResult("n", "Thm 1", f"rate {x:.2f} here", 1.0, 1e-3, 2.0,'
              ' "wrong input")\n')
    (check,) = checks_in_source(source, "fake")
    assert (check.function, check.claim, check.tolerance, check.control_what) == (
        "fake.check", "rate … here", "0.001", "wrong input")


# -- the build ------------------------------------------------------------------------------------------

def sphinx_available() -> bool:
    probe = subprocess.run([DOCS_PYTHON, "-c", "import sphinx, myst_nb, furo"], capture_output=True)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def built_site():
    """The site, built once for this module with warnings as errors."""
    if not sphinx_available():
        unavailable(f"{DOCS_PYTHON} cannot import sphinx, myst_nb and furo (pip install -e '.[docs]')")
    start = time.perf_counter()
    build = subprocess.run([DOCS_PYTHON, "-m", "sphinx", "-W", "--keep-going", "-q", str(DOCS), str(SITE)],
                           cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    report = [line for line in (build.stdout + build.stderr).splitlines() if "IPKernelApp" not in line]
    print(f"docs build: {time.perf_counter() - start:.0f} s")
    return build.returncode, "\n".join(report[-60:])


def test_the_docs_build_without_a_warning(built_site):
    returncode, report = built_site
    assert returncode == 0, f"the docs build failed (warnings are errors):\n{report}"
    for page in ("index.html", "tour.html", "validation.html", "readings.html", "api.html",
                 "generated/kltrain.regularized.html", "generated/toyproblems.html", "generated/validation.html",
                 "notebooks/04_mnist.html", "_static/mathjax/tex-chtml.js"):
        assert (SITE / page).is_file(), page


def chromium() -> str:
    binary = browser_check.find_chromium()
    if binary is None:
        unavailable("no Chromium (apt-get install chromium)")
    return binary


def test_a_browser_sees_the_pages_whole(built_site):
    returncode, report = built_site
    if returncode != 0:
        pytest.fail("the docs did not build (see test_the_docs_build_without_a_warning)")
    results = browser_check.check_site(SITE, list(browser_check.DEFAULT_PAGES), DOCS / "_build" / "screenshots",
                                       chromium())
    assert all(r.screenshot and r.screenshot.stat().st_size > 10_000 for r in results)
    assert not [r.line() for r in results if r.problems]


BAD_PAGES = {
    "blank.html": ("<html><body><p>hi</p></body></html>", "blank"),
    "raw_math.html": ("<html><body><article role=main><p>" + "text " * 50 + "where $F_\\tau(x)$ is raw"
                      "</p></article></body></html>", "unrendered math"),
    "role.html": ("<html><body><p>" + "text " * 50 + " :math:`x` </p></body></html>", "unrendered math"),
    "console.html": ("<html><body><p>" + "text " * 50 + "</p><script>console.error('boom')</script></body></html>",
                     "console error"),
    "web.html": ("<html><head><link rel=stylesheet href='https://fonts.example.invalid/x.css'></head><body><p>"
                 + "text " * 50 + "</p></body></html>", "request outside the site"),
    "no_math.html": ("<html><body><p>" + "text " * 50 + "</p></body></html>", "no rendered formula"),
}


def test_negative_controls_each_broken_page_fails(tmp_path):
    """The browser check must be able to fail: one page per kind of breakage, and a good page passes."""
    for name, (html, _) in BAD_PAGES.items():
        (tmp_path / name).write_text(html)
    (tmp_path / "good.html").write_text("<html><head><link rel=icon href='data:,'></head><body><p>"
                                        + "text " * 50 + "</p></body></html>")
    pages = [f"{name}:math" if name == "no_math.html" else name for name in BAD_PAGES] + ["good.html"]
    results = {r.page: r for r in browser_check.check_site(tmp_path, pages, tmp_path / "shots", chromium())}
    for name, (_, expected) in BAD_PAGES.items():
        assert any(expected in p for p in results[name].problems), (name, results[name].problems)
    assert results["good.html"].problems == []
