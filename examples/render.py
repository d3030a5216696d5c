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


def notebooks() -> list[Path]:
    return sorted(HERE.glob("[0-9][0-9]_*.py"))


def execute(path: Path, timeout: int = 120):
    """The executed notebook (nbformat) of a percent-format ``.py`` file."""
    import jupytext
    from nbclient import NotebookClient

    nb = jupytext.read(path)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    return nb


def source_key(path: Path) -> str:
    """A hash of the notebook and of the code it runs: a cached execution is reused only while both are unchanged."""
    digest = hashlib.sha256(Path(path).read_bytes() + Path(__file__).read_bytes())
    for folder in CODE:
        for source in sorted((ROOT / folder).rglob("*.py")):
            digest.update(source.relative_to(ROOT).as_posix().encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def executed(path: Path, timeout: int = 120, cache: Path = CACHE):
    """``(notebook, seconds)``: the stored execution of ``path`` if its :func:`source_key` matches, else a new one.

    A new execution is stored (written to a temporary file, then renamed) with its key and its
    wall time in ``metadata["kltrain"]``; a notebook whose cell raises is never stored
    (:func:`execute` raises ``nbclient.exceptions.CellExecutionError``).
    """
    import nbformat

    path, key = Path(path), source_key(path)
    stored = Path(cache) / f"{path.stem}.ipynb"
    if stored.exists():
        nb = nbformat.read(stored, as_version=4)
        meta = nb.metadata.get("kltrain", {})
        if meta.get("source_key") == key:
            return nb, float(meta["seconds"])
    start = time.perf_counter()
    nb = execute(path, timeout=timeout)
    seconds = time.perf_counter() - start
    nb.metadata["kltrain"] = {"source_key": key, "seconds": seconds, "source": path.name}
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
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in notebooks():
        nb, seconds = executed(path)
        nbformat.write(nb, args.out / f"{path.stem}.ipynb")
        (args.out / f"{path.stem}.html").write_text(HTMLExporter().from_notebook_node(nb)[0])
        print(f"{args.out / path.stem}.html  ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
