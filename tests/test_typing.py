"""mypy passes on kltrain/ (configured in pyproject.toml), and catches a wrongly typed call."""

import shutil
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")
ROOT = Path(__file__).resolve().parents[1]


def run_mypy(*args: str) -> tuple[str, int]:
    stdout, stderr, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), *args])
    return stdout + stderr, status


def test_kltrain_type_checks():
    out, status = run_mypy(str(ROOT / "kltrain"))
    assert status == 0, out


def test_the_package_ships_a_py_typed_marker():
    assert (ROOT / "kltrain" / "py.typed").exists()


def test_negative_control_a_wrong_call_is_reported(tmp_path):
    """τ given as a string: mypy must flag it, or the check above proves nothing."""
    bad = tmp_path / "bad_call.py"
    bad.write_text("import kltrain\nkltrain.local_entropy(object(), [0.0, 0.0], '0.2')\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    out, status = run_mypy(str(bad))
    assert status == 1 and "local_entropy" in out and "str" in out, out
