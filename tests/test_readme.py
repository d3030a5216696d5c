"""Every ```python block of the README runs, in order, in one namespace (as a reader would paste them)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_readme_has_python_blocks_to_run():
    assert len(python_blocks(README.read_text())) >= 4


def test_a_failing_block_fails_the_check():
    """Negative control: the harness really executes the text it extracts."""
    (block,) = python_blocks("```python\nraise RuntimeError('ran')\n```\n")
    with pytest.raises(RuntimeError, match="ran"):
        exec(compile(block, "README-control", "exec"), {})


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks may write files (figures)
    namespace: dict = {"__name__": "__readme__"}
    for i, block in enumerate(python_blocks(README.read_text())):
        exec(compile(block, f"README.md block {i + 1}", "exec"), namespace)
