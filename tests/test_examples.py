"""The notebooks in examples/ execute in a Jupyter kernel, each within its time budget."""

import os
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("nbclient")
pytest.importorskip("jupytext")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import render  # noqa: E402

BUDGET_S = 60  # the limit per notebook on 2 cores; they take 3–20 s


def test_there_are_five_notebooks_without_stored_outputs():
    paths = render.notebooks()
    assert [p.name[:2] for p in paths] == ["01", "02", "03", "04", "05"]
    assert not list(render.HERE.glob("*.ipynb"))  # outputs never live in git: .py percent files only


@pytest.mark.parametrize("path", render.notebooks(), ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch):
    if path.stem == "05_your_model" and os.environ.get("KLTRAIN_REQUIRE_ADAPTERS") != "1":
        pytest.importorskip("torch", reason="05_your_model needs PyTorch (pip install torch==2.13.0; .ci/run does)")
    monkeypatch.setenv("KLTRAIN_EXAMPLES_QUICK", "1")     # notebooks with a full size run their reduced one
    start = time.perf_counter()
    nb = render.execute(path, timeout=BUDGET_S)
    assert time.perf_counter() - start < BUDGET_S + 30  # kernel start-up on a loaded machine
    assert sum(c.cell_type == "code" for c in nb.cells) >= 3


def test_a_failing_notebook_fails(tmp_path):
    """Negative control: an exception in a cell must surface."""
    from nbclient.exceptions import CellExecutionError
    bad = tmp_path / "bad.py"
    bad.write_text("# %%\nraise ValueError('cell failed')\n")
    with pytest.raises(CellExecutionError, match="cell failed"):
        render.execute(bad)
