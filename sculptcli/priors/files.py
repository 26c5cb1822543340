"""Prior specs kept in their own YAML files: resolve a reference (a preset prior name or a path) and validate it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from sculptcli.errors import UserError, did_you_mean
from sculptcli.priors import PriorSpec, prior_union

_ADAPTER: TypeAdapter | None = None


def adapter() -> TypeAdapter:
    global _ADAPTER
    if _ADAPTER is None:
        _ADAPTER = TypeAdapter(prior_union())
    return _ADAPTER


def prior_presets_dir() -> Path:
    from sculptcli.presetfiles import presets_dir

    return presets_dir() / "priors"


def prior_preset_names() -> list[str]:
    d = prior_presets_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def resolve_prior_path(ref: str, base: Path | None = None) -> Path:
    """A prior reference -> a file: a path (absolute, or relative to `base` then the cwd) or a preset prior name."""
    cand = Path(ref)
    for p in ([base / cand] if base and not cand.is_absolute() else []) + [cand]:
        if p.is_file():
            return p
    named = prior_presets_dir() / f"{ref}.yaml"
    if named.is_file():
        return named
    raise UserError(
        f"no prior file or packaged prior named '{ref}'.{did_you_mean(ref, prior_preset_names())}",
        fix=f"give a YAML file path or one of: {', '.join(prior_preset_names())}",
    )


def read_prior_mapping(path: Path, _depth: int = 0) -> dict[str, Any]:
    """The prior mapping in a file: either the spec itself or a mapping with a `prior:` key
    (a run config; its `prior: NAME_OR_PATH` reference is followed)."""
    from sculptcli.yamlfile import read_yaml

    data = read_yaml(path)
    if "type" not in data and "prior" in data:
        value = data["prior"]
        ref = value.get("file") if isinstance(value, dict) and set(value) == {"file"} else value
        if isinstance(ref, str):
            if _depth >= 8:
                raise UserError("prior references nest too deeply (a cycle?)", where=str(path))
            return read_prior_mapping(resolve_prior_path(ref, Path(path).parent), _depth + 1)
        if isinstance(value, dict):
            data = value
    return data


def expand_prior_ref(value: Any, base: Path | None) -> Any:
    """Inline a referenced prior file: `prior: NAME_OR_PATH` or `prior: {file: PATH}` -> its mapping."""
    ref = value.get("file") if isinstance(value, dict) and set(value) == {"file"} else value
    if isinstance(ref, str):
        return read_prior_mapping(resolve_prior_path(ref, base))
    return value


def load_prior(target: str, base: Path | None = None) -> PriorSpec:
    """A validated prior from a file or packaged prior name; errors name the key path and rule."""
    from sculptcli.validation import format_validation

    path = resolve_prior_path(target, base)
    data = read_prior_mapping(path)
    try:
        return adapter().validate_python(data)
    except ValidationError as e:
        raise UserError(
            f"invalid prior\n  {format_validation(e, 'prior')}",
            where=str(path),
            fix="see `sculpt prior list` for the prior types and their parameters",
        ) from None
