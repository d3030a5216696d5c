"""Print the oldest declared Python and dependency pins of pyproject.toml: "3.10 numpy==1.24 scipy==1.10 ...".

Every runtime dependency must be declared as "name>=version" (a floor); anything else is an error here,
so that a floor cannot be added without being tested by .ci/floors.
"""

import re
import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
python = re.fullmatch(r">=\s*(3\.\d+)", project["requires-python"].strip())
if python is None:
    sys.exit(f"floor_pins: requires-python must read '>=3.N', got {project['requires-python']!r}")
pins = []
for spec in project["dependencies"]:
    m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([0-9][0-9.]*)", spec.strip())
    if m is None:
        sys.exit(f"floor_pins: dependency {spec!r} is not of the form 'name>=version'")
    pins.append(f"{m[1]}=={m[2]}")
print(python[1], *pins)
