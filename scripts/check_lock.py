"""Fail when pyproject.toml asks for what the lock does not hold.

`make test` and `make serve` run this after installing from the lock. A lock
that no longer satisfies pyproject.toml would otherwise install quietly and
test a different set of packages from the one the project declares.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
TORCH_PINS = ROOT / "requirements" / "torch.txt"
PYPROJECT = ROOT / "pyproject.toml"
FIX = "Run `make lock`, then `make test`, and commit requirements/lock.txt with pyproject.toml."

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def read_pins(text: str) -> dict[NormalizedName, Version]:
    """`name==version` lines of a requirements file, by normalised name."""
    pins = {}
    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def locked_as_direct(lock_text: str, project: str) -> set[NormalizedName]:
    """Packages pip-compile recorded as wanted by the project itself ("# via <project> (pyproject.toml)")."""
    marker = f"{project} (pyproject.toml)"
    direct, current = set(), None
    for line in lock_text.splitlines():
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match[1])
        elif current and line.lstrip().startswith("#") and marker in line:
            direct.add(current)
    return direct


def declared_requirements(pyproject: dict) -> list[Requirement]:
    """The project's dependencies and every extra's."""
    project = pyproject["project"]
    lines = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        lines.extend(extra)
    return [Requirement(line) for line in lines]


def disagreements(pyproject: dict, lock_text: str, torch_pins_text: str) -> list[str]:
    """What pyproject.toml asks for that the lock (with the torch pins) does not give, in words."""
    pins = read_pins(lock_text) | read_pins(torch_pins_text)
    declared = declared_requirements(pyproject)
    problems = []
    for requirement in declared:
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"pyproject.toml asks for {requirement}; the lock has no {name}")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"pyproject.toml asks for {requirement}; the lock has {name}=={pins[name]}")
    declared_names = {canonicalize_name(r.name) for r in declared}
    for name in sorted(locked_as_direct(lock_text, pyproject["project"]["name"]) - declared_names):
        problems.append(f"the lock has {name} as a dependency of the project; pyproject.toml no longer asks for it")
    return problems


def main() -> int:
    pyproject = tomllib.loads(PYPROJECT.read_text())
    problems = disagreements(pyproject, LOCK.read_text(), TORCH_PINS.read_text())
    if problems:
        print("pyproject.toml and requirements/lock.txt disagree:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        print(FIX, file=sys.stderr)
        return 1
    print(f"check_lock: {len(read_pins(LOCK.read_text()))} locked packages satisfy pyproject.toml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
