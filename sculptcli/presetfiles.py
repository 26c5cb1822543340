"""Where the packaged presets are, by name: plain paths (no YAML, pydantic or torch), so `sculpt presets list|show`
start fast."""

from __future__ import annotations

from pathlib import Path

from sculptcli.errors import UserError, did_you_mean


def presets_dir() -> Path:
    """Packaged presets (wheel) or the repository's presets/ (editable install)."""
    here = Path(__file__).resolve().parent
    for cand in (here / "_presets", here.parent / "presets"):
        if cand.is_dir():
            return cand
    raise UserError("the packaged presets are missing", fix="reinstall sculpt")


def preset_names() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = presets_dir() / f"{name}.yaml"
    if not path.is_file():
        raise UserError(
            f"unknown preset '{name}'.{did_you_mean(name, preset_names())}",
            fix=f"choose one of: {', '.join(preset_names())} (see `sculpt presets list`)",
        )
    return path
