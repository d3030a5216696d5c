"""``python -m kltrain``: the same command as ``kltrain``."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
