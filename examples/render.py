"""Execute the notebooks and write them as HTML: ``python3 examples/render.py [--out DIR]``.

The notebooks are stored as jupytext "percent" ``.py`` files (no outputs in git). This runs each
one in a fresh Jupyter kernel (nbclient) from the repository root and writes ``DIR/NAME.html``
(default ``examples/html/``) and ``DIR/NAME.ipynb`` with the outputs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


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


def main(argv=None) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=HERE / "html")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in notebooks():
        start = time.perf_counter()
        nb = execute(path)
        nbformat.write(nb, args.out / f"{path.stem}.ipynb")
        (args.out / f"{path.stem}.html").write_text(HTMLExporter().from_notebook_node(nb)[0])
        print(f"{args.out / path.stem}.html  ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
