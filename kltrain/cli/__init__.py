"""The ``kltrain`` command line: ``main`` parses and dispatches; ``args`` holds the argument types.

Every subcommand reports a failure in one line and an exit code (1: the run failed, 2: the request
was bad, 130: interrupted); ``--debug`` shows the traceback.
"""

from .main import main

__all__ = ["main"]
