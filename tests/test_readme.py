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


def needs_missing_extra(block: str) -> bool:
    """A block of the "Your own model" section needs torch, or jax and optax (optional extras; .ci/run installs them)."""
    import importlib.util
    needed = {"torch": ("torch",), "jax": ("jax", "optax")}
    return any(re.search(rf"^(import|from) (kltrain\.)?{extra}\b", block, re.M)
               and any(importlib.util.find_spec(m) is None for m in modules) for extra, modules in needed.items())


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks may write files (figures)
    namespace: dict = {"__name__": "__readme__"}
    for i, block in enumerate(python_blocks(README.read_text())):
        if needs_missing_extra(block):
            continue
        exec(compile(block, f"README.md block {i + 1}", "exec"), namespace)


def shell_commands(text: str) -> list[str]:
    """The README's shell lines, comments and [optional] brackets removed, `&&` chains split."""
    lines = [line.split("#")[0].replace("[", "").replace("]", "").strip()
             for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M) for line in block.splitlines()]
    return [cmd.strip() for line in lines if line for cmd in line.split("&&")]


def check_command(cmd: str) -> None:
    """`kltrain ...` must parse with the real CLI parser; `python3 -m M` / `python3 FILE` must exist.

    (Running them would install packages or train for minutes: the CI runs the install and
    test commands itself, the notebooks test runs examples/render.py's executor.)
    """
    import importlib.util
    import shlex

    from kltrain.cli.main import build_parser

    argv = shlex.split(cmd)
    if argv[0] == "kltrain":
        build_parser().parse_args(argv[1:])
    elif argv[:3] == ["python3", "-m", "pip"]:
        assert argv[3] == "install"
    elif argv[:2] == ["python3", "-m"]:
        assert importlib.util.find_spec(argv[2]) is not None, cmd
    else:
        assert argv[0] == "python3" and (README.parent / argv[1]).is_file(), cmd


def test_readme_shell_commands_parse():
    commands = shell_commands(README.read_text())
    assert any(c.startswith("kltrain reproduce") for c in commands) and len(commands) >= 6
    for cmd in commands:
        check_command(cmd)


@pytest.mark.parametrize("bad", ["kltrain train --algo is --sampels 10", "python3 -m no_such_module",
                                 "python3 examples/no_such_script.py"])
def test_negative_control_a_wrong_command_fails(bad):
    with pytest.raises((SystemExit, AssertionError)):
        check_command(bad)


def test_only_blocks_of_a_missing_extra_are_left_out(monkeypatch):
    import importlib.util
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)    # as if no extra were installed
    assert needs_missing_extra("import torch\nimport kltrain.torch as kt\n")
    assert needs_missing_extra("import jax, jax.numpy as jnp, optax\n")
    assert not needs_missing_extra("import numpy as np\nimport kltrain\n")   # the core blocks always run
