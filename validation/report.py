"""Check results, the printed table and the markdown report."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class CheckResult:
    """One numerical check of a claim of the paper.

    ``measured`` must be ≤ ``tolerance``; ``control`` is the same measurement on a
    deliberately wrong input (negative control), which must *exceed* the tolerance
    — otherwise the check could not have failed and proves nothing.
    """

    name: str
    paper: str
    claim: str
    measured: float
    tolerance: float
    control: float | None = None
    control_what: str = ""
    detail: str = ""

    def __post_init__(self):  # numpy scalars in, plain floats out (JSON)
        object.__setattr__(self, "measured", float(self.measured))
        object.__setattr__(self, "tolerance", float(self.tolerance))
        if self.control is not None:
            object.__setattr__(self, "control", float(self.control))

    @property
    def passed(self) -> bool:
        ok = self.measured <= self.tolerance
        return bool(ok and (self.control is None or self.control > self.tolerance))


def _cell(text: str) -> str:
    """Escape pipes (|x − y| in a claim) so they do not split a markdown table cell."""
    return text.replace("|", "\\|")


@dataclass
class Report:
    """Collects checks, tables and figures; prints as it goes; writes report.md + results.json."""

    out: Path
    checks: list[CheckResult] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self):
        self.out = Path(self.out)
        (self.out / "figures").mkdir(parents=True, exist_ok=True)

    def add(self, result: CheckResult) -> None:
        self.checks.append(result)
        status = "PASS" if result.passed else "FAIL"
        control = "" if result.control is None else f"  control {result.control:.2e}"
        print(f"[{status}] {result.paper:<14} {result.name:<38} measured {result.measured:.2e}"
              f" <= {result.tolerance:.0e}{control}", flush=True)

    def add_section(self, title: str, markdown: str) -> None:
        self.sections.append((title, markdown))
        text = "\n".join(line for line in markdown.splitlines() if not line.startswith("!["))
        print(f"\n## {title}\n{text}\n", flush=True)

    def figure(self, name: str) -> Path:
        return self.out / "figures" / name

    @property
    def all_passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def write(self) -> Path:
        lines = ["# kltrain validation report", "",
                 f"{sum(c.passed for c in self.checks)}/{len(self.checks)} checks passed "
                 f"in {time.perf_counter() - self.started:.0f} s.", "",
                 "Each check measures a claim of the paper against an independent oracle; "
                 "its negative control repeats the measurement on a deliberately wrong input "
                 "and must exceed the tolerance.", "",
                 "| | paper | claim | measured | tolerance | negative control |",
                 "|---|---|---|---|---|---|"]
        for c in self.checks:
            control = "" if c.control is None else f"{c.control:.2e} ({c.control_what})"
            lines.append(f"| {'PASS' if c.passed else '**FAIL**'} | {_cell(c.paper)} | {_cell(c.claim)} | "
                         f"{c.measured:.2e} | {c.tolerance:.0e} | {_cell(control)} |")
        details = [f"- **{c.paper} — {c.name}**: {c.detail}" for c in self.checks if c.detail]
        if details:
            lines += ["", "### Details", ""] + details
        for title, body in self.sections:
            lines += ["", f"## {title}", "", body]
        path = self.out / "report.md"
        path.write_text("\n".join(lines) + "\n")
        (self.out / "results.json").write_text(json.dumps(
            [dict(asdict(c), passed=c.passed) for c in self.checks], indent=1))
        return path
