"""``python -m toyproblems --out DIR``: write the toy figures (Figs 2.1, 2.2, 5.1, trajectories)."""

import argparse

from .plots import make_all


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m toyproblems", description=__doc__)
    parser.add_argument("--out", default="toy-figures", help="output folder (default: toy-figures)")
    args = parser.parse_args(argv)
    for path in make_all(args.out):
        print(path)


if __name__ == "__main__":
    main()
