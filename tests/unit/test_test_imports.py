"""No module under tests/ imports a test module: shared support code lives in
tests/helpers/ and fixtures in conftest.py files. A test module imported by
another runs its import-time code twice and any test function it hands over is
collected twice; and a helper hidden in a test module is hard to find."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def imports_of_test_modules(source: str) -> list[tuple[int, str]]:
    """(line, module) for each import in `source` of a module whose own name starts with test_."""

    def is_test_module(name: str) -> bool:
        return any(part.startswith("test_") for part in name.split("."))

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if is_test_module(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if is_test_module(module):
                found.append((node.lineno, module))
            else:  # from package import test_module
                separator = "." if node.module else ""
                found += [(node.lineno, module + separator + alias.name)
                          for alias in node.names if alias.name.startswith("test_")]
    return found


def test_no_module_under_tests_imports_a_test_module():
    modules = sorted(TESTS.rglob("*.py"))
    assert Path(__file__).resolve() in modules  # it reads the right tree
    offences = [
        f"{path.relative_to(TESTS.parent)}:{line} imports {name}"
        for path in modules
        for line, name in imports_of_test_modules(path.read_text())
    ]
    assert not offences, "move what these share into tests/helpers/:\n" + "\n".join(offences)


def test_the_check_names_each_import_of_a_test_module_and_nothing_else():
    source = """\
import tests.integration.test_tts_api
from tests.integration.test_jobs_api import submit
from .test_metrics import scrape
from .. import test_metrics
from tests.integration import test_tts_api
from tests.helpers.speech import long_text
import pytest
"""
    assert imports_of_test_modules(source) == [
        (1, "tests.integration.test_tts_api"),
        (2, "tests.integration.test_jobs_api"),
        (3, ".test_metrics"),
        (4, "..test_metrics"),
        (5, "tests.integration.test_tts_api"),
    ]
