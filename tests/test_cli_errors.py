"""Issue 11, class 5: the command line refuses bad values up front, in one line."""

import subprocess
import sys
from pathlib import Path

import pytest

from kltrain.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv", [
    ["bench", "--samples", "0"], ["bench", "--repeat", "0"], ["bench", "--m", "0"], ["bench", "--nets", "foo"],
    ["bench", "--samples", "-5"], ["reproduce", "fig-6.1", "--seeds", "0"], ["bench-distributed", "--workers", "0"],
    ["bench-distributed", "--samples", "10,x"], ["train", "--algo", "sgd", "--tau", "-1"],
    ["train", "--algo", "sgd", "--tau", "nan"], ["train", "--algo", "sgd", "--updates", "-1"],
    ["train", "--algo", "sgd", "--seed", "-3"], ["train", "--algo", "sgd", "--workers", "-1"],
    ["train", "--algo", "sgd", "--lr", "inf"], ["train", "--algo", "sgd", "--eval-every", "0"],
])
def test_out_of_range_numbers_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_in_range_numbers_parse():   # negative control for the test above
    args = build_parser().parse_args(["bench", "--samples", "1", "--nets", "small,hidden"])
    assert args.samples == 1 and args.nets == ["small", "hidden"]
    assert build_parser().parse_args(["bench-distributed", "--workers", "1,2"]).workers == [1, 2]


def test_a_user_error_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    argv = ["train", "--algo", "sgd", "--out", str(tmp_path / "f")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("kltrain: error: --out") and err.count("\n") == 1
    with pytest.raises(ValueError, match="not a folder"):
        main(argv + ["--debug"])
    with pytest.raises(ValueError, match="not a folder"):
        main(["--debug"] + argv)


def test_python_m_kltrain_is_the_command():
    run = subprocess.run([sys.executable, "-m", "kltrain", "bench", "--samples", "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "kltrain bench: error: argument --samples: must be >= 1" in run.stderr
