"""The lock check: pyproject.toml against requirements/lock.txt."""

import pytest
import tomllib

from scripts import check_lock

LOCK = """\
#    pip-compile --output-file=requirements/lock.txt pyproject.toml
numpy==2.3.0 \\
    --hash=sha256:aa
    # via
    #   scipy
    #   voicegraph (pyproject.toml)
scipy==1.16.0 \\
    --hash=sha256:bb
    # via voicegraph (pyproject.toml)
Typing_Extensions==4.15.0 \\
    --hash=sha256:cc
    # via scipy
"""
TORCH = "# pins\ntorch==2.13.0\n"


def project(dependencies, dev=()):
    return {"project": {"name": "voicegraph", "dependencies": list(dependencies),
                        "optional-dependencies": {"dev": list(dev)}}}


@pytest.mark.parametrize(
    ("dependencies", "dev", "expected"),
    [
        (["numpy>=2", "scipy"], [], []),
        (["numpy>=2", "scipy"], ["torch>=2.4"], []),
        (["NumPy>=2", "scipy", "typing-extensions"], [], []),
        (["numpy>=2.4", "scipy"], [], ["pyproject.toml asks for numpy>=2.4; the lock has numpy==2.3.0"]),
        (["numpy>=2", "scipy", "httpx"], [], ["pyproject.toml asks for httpx; the lock has no httpx"]),
        (["numpy>=2", "scipy"], ["torch<2.13"], ["pyproject.toml asks for torch<2.13; the lock has torch==2.13.0"]),
        (["numpy>=2"], [], ["the lock has scipy as a dependency of the project; pyproject.toml no longer asks for it"]),
        (["numpy>=2", "scipy", "tomli; python_version < '3.0'"], [], []),
    ],
)
def test_disagreements(dependencies, dev, expected):
    assert check_lock.disagreements(project(dependencies, dev), LOCK, TORCH) == expected


def test_read_pins_normalises_names_and_skips_comments():
    pins = check_lock.read_pins(LOCK + TORCH)
    assert {name: str(version) for name, version in pins.items()} == {
        "numpy": "2.3.0", "scipy": "1.16.0", "typing-extensions": "4.15.0", "torch": "2.13.0"}


def test_the_repository_lock_agrees_with_pyproject():
    problems = check_lock.disagreements(
        tomllib.loads(check_lock.PYPROJECT.read_text()),
        check_lock.LOCK.read_text(),
        check_lock.TORCH_PINS.read_text(),
    )
    assert problems == [], f"{problems}\n{check_lock.FIX}"


def test_the_lock_names_no_local_path_or_local_build():
    text = check_lock.LOCK.read_text()
    for fragment in ("/opt/", "/tmp/", "/root/", "/work/", "file://", "+cpu"):
        assert fragment not in text
