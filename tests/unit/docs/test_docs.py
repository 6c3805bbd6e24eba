"""The docs hold together: every relative link leads somewhere, and the
configuration page is what the settings model says."""

import re
from pathlib import Path

import pytest

from scripts import settings_docs

ROOT = Path(__file__).resolve().parents[3]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def prose(markdown: str) -> str:
    """The text outside code blocks, where a link or a heading is one."""
    return FENCE.sub("", markdown)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lowercase, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text, not its target
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    found: set[str] = set()
    for heading in HEADING.findall(prose(markdown)):
        base = slug(heading)
        name, n = base, 0
        while name in found:  # GitHub numbers repeated headings: name, name-1, name-2
            n += 1
            name = f"{base}-{n}"
        found.add(name)
    return found


def relative_links(markdown: str) -> list[str]:
    text = CODE_SPAN.sub("", prose(markdown))
    return [target for target in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in relative_links(page.read_text()):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no file {shown(linked)}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
            broken.append(f"{target}: no heading #{anchor} in {shown(linked)}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(ROOT)) for page in PAGES])
def test_every_relative_link_leads_somewhere(page):
    assert broken_links(page) == []


def test_the_checker_finds_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "b.md").write_text("# Title\n\n## `POST /v1/tts` (JSON)\n\n```\n# not a heading\n```\n")
    page = tmp_path / "a.md"
    page.write_text(
        "[ok](b.md#post-v1tts-json) [ok](#here) [web](https://example.com) `[code](nowhere.md)`\n"
        "## Here\n[gone](c.md) [no heading](b.md#not-a-heading) [no anchor](#there)\n"
    )
    assert broken_links(page) == [
        f"c.md: no file {tmp_path / 'c.md'}",
        "b.md#not-a-heading: no heading #not-a-heading in " + str(tmp_path / "b.md"),
        "#there: no heading #there in " + str(page),
    ]


def test_repeated_headings_get_numbered_anchors():
    assert anchors("# A\n## A\n### A b\n") == {"a", "a-1", "a-b"}


def test_the_configuration_page_is_up_to_date():
    """docs/configuration.md is generated from voicegraph/core/settings.py: `make docs` rewrites it."""
    assert settings_docs.main(["--check"]) == 0, "docs/configuration.md is out of date: run `make docs`"


def test_descriptions_are_the_comments_above_a_field_and_at_its_end():
    source = """
class Settings:
    model_config = {}

    # Audio
    # Silence between chunks.
    pause_ms: int = 180
    fade_ms: float = 8.0  # at each chunk edge

    # Storage. Give it a persistent volume.
    storage_root: str = "./data"

    # Set at image build.
    git_sha: str | None = None
"""
    notes = settings_docs.class_notes(source)["Settings"]
    assert notes.comments == {
        "pause_ms": "Silence between chunks.",
        "fade_ms": "at each chunk edge",
        "storage_root": "Give it a persistent volume.",
        "git_sha": "Set at image build.",
    }
    assert notes.groups == {"pause_ms": "Audio", "fade_ms": "Audio", "storage_root": "Storage", "git_sha": "Other"}


def test_every_setting_has_a_row_with_its_variable():
    page = settings_docs.render()
    for variable in (
        "VG_ENGINE",
        "VG_SYNTHESIZER__MAX_REPLICAS",
        "VG_AUTH__LIMITS__CHARS_PER_MIN",
        "VG_INGRESS__NUM_CPUS",
    ):
        assert f"`{variable}`" in page
    # Each deployment's own defaults, not the class's: the ingress waits 300 s, the chunker 30.
    assert (
        "| `ingress.graceful_shutdown_timeout_s` | `VG_INGRESS__GRACEFUL_SHUTDOWN_TIMEOUT_S` | `float` | `300.0` |"
        in page
    )
    assert (
        "| `chunker.graceful_shutdown_timeout_s` | `VG_CHUNKER__GRACEFUL_SHUTDOWN_TIMEOUT_S` | `float` | `30.0` |"
        in page
    )
