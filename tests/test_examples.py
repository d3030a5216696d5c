"""The notebooks in examples/ execute in a Jupyter kernel, each within its time budget.

Each notebook runs once per change of the code: ``render.executed`` reuses the execution stored by
whichever of this test and the docs build (``docs/conf.py``) ran first on the same sources.
"""

import os
import sys
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
def test_notebook_runs(path):
    if path.stem == "05_your_model" and os.environ.get("KLTRAIN_REQUIRE_ADAPTERS") != "1":
        pytest.importorskip("torch", reason="05_your_model needs PyTorch (pip install torch==2.13.0; .ci/run does)")
    nb, seconds = render.executed(path, timeout=BUDGET_S)   # quick: notebooks with a full size run their reduced one
    assert seconds < BUDGET_S + 30  # kernel start-up on a loaded machine
    assert sum(c.cell_type == "code" for c in nb.cells) >= 3
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


def test_a_stored_execution_is_reused_only_for_the_same_sources(tmp_path):
    """The cache key covers the notebook: an edited notebook is executed again, never served stale."""
    nb_path = tmp_path / "01_tiny.py"
    nb_path.write_text("# %%\nprint('first')\n")
    first, _ = render.executed(nb_path, cache=tmp_path / "cache")
    again, _ = render.executed(nb_path, cache=tmp_path / "cache")
    assert again.metadata["kltrain"] == first.metadata["kltrain"]  # read back, not rerun
    nb_path.write_text("# %%\nprint('second')\n")
    edited, _ = render.executed(nb_path, cache=tmp_path / "cache")
    assert edited.cells[0].outputs[0]["text"] == "second\n"


def test_a_failing_notebook_fails(tmp_path):
    """Negative control: an exception in a cell must surface."""
    from nbclient.exceptions import CellExecutionError
    bad = tmp_path / "bad.py"
    bad.write_text("# %%\nraise ValueError('cell failed')\n")
    with pytest.raises(CellExecutionError, match="cell failed"):
        render.executed(bad, cache=tmp_path / "cache")
    assert not (tmp_path / "cache" / "bad.ipynb").exists()  # a failed run is never served from the cache
