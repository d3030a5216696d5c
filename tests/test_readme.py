"""Every ```python block of the README and of the docs pages runs, in order, one namespace per page
(as a reader would paste them); every shell command in them parses or names something that exists."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS_PAGES = sorted(p for p in (ROOT / "docs").rglob("*.md") if not any(part.startswith("_") for part in
                                                                         p.relative_to(ROOT / "docs").parts))
PAGES = [README, *DOCS_PAGES]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_readme_and_the_tour_have_python_blocks_to_run():
    assert len(python_blocks(README.read_text())) >= 1  # the taste
    assert len(python_blocks((ROOT / "docs" / "tour.md").read_text())) >= 4


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


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p.read_text())],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks may write files (figures)
    namespace: dict = {"__name__": "__readme__"}
    for i, block in enumerate(python_blocks(page.read_text())):
        if needs_missing_extra(block):
            continue
        exec(compile(block, f"{page.relative_to(ROOT)} block {i + 1}", "exec"), namespace)


def shell_commands(text: str) -> list[str]:
    """The shell lines of a page, continuations joined, comments and [optional] brackets removed, `&&` split."""
    blocks = [block.replace("\\\n", " ") for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)]
    lines = [line.split("#")[0].replace("[", "").replace("]", "").strip()
             for block in blocks for line in block.splitlines()]
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
    while argv and "=" in argv[0] and not argv[0].startswith("-"):  # VAR=value before the command
        argv = argv[1:]
    if argv[0] == "python":
        argv[0] = "python3"
    if argv[0] == "kltrain":
        build_parser().parse_args(argv[1:])
    elif argv[:3] == ["python3", "-m", "pip"]:
        assert argv[3] in ("install", "download"), cmd
    elif argv[:2] == ["python3", "-m"]:
        assert importlib.util.find_spec(argv[2]) is not None or argv[2] in EXTRA_MODULES, cmd
    elif argv[0] == "bash":
        assert (ROOT / argv[1]).is_file(), cmd
    elif argv[0] == "dask":  # the dask scheduler / worker commands of the distributed extra
        assert argv[1] in ("scheduler", "worker") and importlib.util.find_spec("distributed") is not None, cmd
    elif argv[0] == "echo":
        pass
    else:
        assert argv[0] == "python3" and (ROOT / argv[1]).is_file(), cmd


# modules that an optional extra brings (python3 -m sphinx comes with [docs], installed apart in CI)
EXTRA_MODULES = {"sphinx"}


def test_shell_commands_parse():
    commands = [c for page in PAGES for c in shell_commands(page.read_text())]
    assert any(c.startswith("kltrain reproduce") for c in commands) and len(commands) >= 6
    assert any("sphinx" in c for c in shell_commands(README.read_text()))  # the docs command, under 'Read on'
    for cmd in commands:
        check_command(cmd)


@pytest.mark.parametrize("bad", ["kltrain train --algo is --sampels 10", "python3 -m no_such_module",
                                 "python3 examples/no_such_script.py", "bash validation/no_such.sh",
                                 "dask no-such-command"])
def test_negative_control_a_wrong_command_fails(bad):
    with pytest.raises((SystemExit, AssertionError)):
        check_command(bad)


def test_only_blocks_of_a_missing_extra_are_left_out(monkeypatch):
    import importlib.util
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)    # as if no extra were installed
    assert needs_missing_extra("import torch\nimport kltrain.torch as kt\n")
    assert needs_missing_extra("import jax, jax.numpy as jnp, optax\n")
    assert not needs_missing_extra("import numpy as np\nimport kltrain\n")   # the core blocks always run
