"""The checks the validation suite declares, read from its source (the docs site lists them).

Each check is a function that returns a :class:`validation.report.CheckResult`; its name, the
paper's claim, the tolerance and the negative control are arguments of that one call. Reading them
from the source (an AST walk, nothing runs) keeps the documented list the suite's own, without the
minutes the checks take. A part of an argument computed at run time (an f-string field) shows as "…".
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from types import ModuleType

FIELDS = ("name", "paper", "claim", "measured", "tolerance", "control", "control_what", "detail")


@dataclass(frozen=True)
class DeclaredCheck:
    """One ``CheckResult(...)`` call of the suite: where it is and what it claims."""

    function: str       # the qualified name of the function that makes the check
    name: str
    paper: str          # the paper's equation, theorem or algorithm
    claim: str
    tolerance: str      # the tolerance's source text (``measured`` must be ≤ it)
    control_what: str   # the negative control: the same measurement on a deliberately wrong input


def _text(node: ast.expr | None) -> str:
    """A string argument as written: constants joined, run-time f-string fields as "…"."""
    if node is None:
        return ""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "…" for v in node.values)
    return ast.unparse(node)


def _calls(function: ast.FunctionDef) -> list[dict[str, ast.expr]]:
    calls = []
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "CheckResult":
            args = dict(zip(FIELDS, node.args))
            args.update({k.arg: k.value for k in node.keywords if k.arg})
            calls.append(args)
    return calls


def declared_checks(module: ModuleType) -> list[DeclaredCheck]:
    """Every check that ``module``'s functions declare, in source order."""
    return checks_in_source(inspect.getsource(module), module.__name__)


def checks_in_source(source: str, module_name: str) -> list[DeclaredCheck]:
    """Every ``CheckResult(...)`` call in the top-level functions of ``source``, in source order."""
    tree = ast.parse(source)
    found = []
    for function in tree.body:
        if not isinstance(function, ast.FunctionDef):
            continue
        for args in _calls(function):
            found.append(DeclaredCheck(
                f"{module_name}.{function.name}", _text(args.get("name")), _text(args.get("paper")),
                _text(args.get("claim")), ast.unparse(args["tolerance"]) if "tolerance" in args else "",
                _text(args.get("control_what"))))
    return found


def suite_checks() -> list[tuple[str, list[DeclaredCheck]]]:
    """The suite's checks by part, in the order ``python -m validation`` runs them."""
    from . import estimators, mnist, theorems
    return [("Theorems and identities (toy problems, exact schemes)", declared_checks(theorems)),
            ("Sampling estimators (Algorithms 3–5) against the exact answers", declared_checks(estimators)),
            ("The paper's MNIST experiments", declared_checks(mnist))]
