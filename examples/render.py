"""Execute the notebooks and write them as HTML: ``python3 examples/render.py [--out DIR]``.

The notebooks are stored as jupytext "percent" ``.py`` files (no outputs in git). This runs each
one in a fresh Jupyter kernel (nbclient) from the repository root and writes ``DIR/NAME.html``
(default ``examples/html/``) and ``DIR/NAME.ipynb`` with the outputs.

Each notebook is executed once per change of the code: :func:`executed` keeps the executed
notebook in ``docs/_build/notebooks/`` under a key of the notebook's source, this file and every
``.py`` file of ``kltrain`` and ``toyproblems``, so the tests (``tests/test_examples.py``), the
docs build (``docs/conf.py``) and this script share one execution.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = ROOT / "docs" / "_build" / "notebooks"
CODE = ("kltrain", "toyproblems")  # the packages the notebooks import
QUICK_ENV = "KLTRAIN_EXAMPLES_QUICK"


def notebooks() -> list[Path]:
    return sorted(HERE.glob("[0-9][0-9]_*.py"))


def execute(path: Path, timeout: int = 120, quick: bool = True):
    """The executed notebook (nbformat) of a percent-format ``.py`` file.

    ``quick`` sets ``KLTRAIN_EXAMPLES_QUICK=1`` in the kernel: a notebook with a long full-size run
    (05_your_model: 5.5 min of one core) runs its reduced one, as the tests and the docs build do.
    """
    import jupytext
    from nbclient import NotebookClient

    nb = jupytext.read(path)
    before = os.environ.get(QUICK_ENV)
    os.environ[QUICK_ENV] = "1" if quick else "0"    # the kernel inherits this process's environment
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT)}}).execute()
    finally:
        if before is None:
            os.environ.pop(QUICK_ENV)
        else:
            os.environ[QUICK_ENV] = before
    return nb


def source_key(path: Path, quick: bool = True) -> str:
    """A hash of the notebook, of the code it runs and of the size it runs at: a cached execution is reused
    only while all three are unchanged."""
    digest = hashlib.sha256(Path(path).read_bytes() + Path(__file__).read_bytes() + (b"quick" if quick else b"full"))
    for folder in CODE:
        for source in sorted((ROOT / folder).rglob("*.py")):
            digest.update(source.relative_to(ROOT).as_posix().encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def executed(path: Path, timeout: int = 120, cache: Path = CACHE, quick: bool = True):
    """``(notebook, seconds)``: the stored execution of ``path`` if its :func:`source_key` matches, else a new one.

    A new execution is stored (written to a temporary file, then renamed) with its key and its
    wall time in ``metadata["kltrain"]``; a notebook whose cell raises is never stored
    (:func:`execute` raises ``nbclient.exceptions.CellExecutionError``).
    """
    import nbformat

    path, key = Path(path), source_key(path, quick)
    stored = Path(cache) / f"{path.stem}.ipynb"
    if stored.exists():
        nb = nbformat.read(stored, as_version=4)
        meta = nb.metadata.get("kltrain", {})
        if meta.get("source_key") == key:
            return nb, float(meta["seconds"])
    start = time.perf_counter()
    nb = execute(path, timeout=timeout, quick=quick)
    seconds = time.perf_counter() - start
    nb.metadata["kltrain"] = {"source_key": key, "seconds": seconds, "source": path.name, "quick": quick}
    stored.parent.mkdir(parents=True, exist_ok=True)
    tmp = stored.with_name(f".{stored.name}.{os.getpid()}.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, stored)
    return nb, seconds


def main(argv=None) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=HERE / "html")
    parser.add_argument("--full", action="store_true", help="run each notebook at its full size (05: minutes)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in notebooks():
        nb, seconds = executed(path, timeout=3600 if args.full else 120, quick=not args.full)
        nbformat.write(nb, args.out / f"{path.stem}.ipynb")
        (args.out / f"{path.stem}.html").write_text(HTMLExporter().from_notebook_node(nb)[0])
        print(f"{args.out / path.stem}.html  ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
