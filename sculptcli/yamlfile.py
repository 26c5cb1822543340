"""Reading YAML files strictly (safe loader, duplicate keys refused), with errors that say where: no pydantic and
no torch, so `sculpt prior validate` starts fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sculptcli.errors import UserError


class StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping with the same key twice (plain safe_load keeps the last one)."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a scalar", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' (also at line {seen[key].line + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_text(text: str) -> Any:
    """YAML text → data with the safe loader, duplicate keys refused (yaml.YAMLError); no Python objects ever."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506  (a SafeLoader subclass)


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from `path` (safe_load only), or UserError saying what is wrong and where."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}", fix="check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError("not a text (UTF-8) file", where=str(path), fix="give a YAML file") from None
    try:
        data = load_yaml_text(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"malformed YAML: {problem}", where=loc, fix="fix the YAML syntax") from None
    except RecursionError:
        raise UserError("the YAML nests too deeply", where=str(path), fix="flatten the file") from None
    except (ValueError, TypeError, OverflowError) as e:  # a tag whose value does not convert: !!float "abc"
        why = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise UserError(f"malformed YAML: {why}", where=str(path), fix="fix the value") from None
    if data is None:
        raise UserError("the file is empty", where=str(path), fix="write a YAML mapping")
    if not isinstance(data, dict):
        raise UserError(f"expected a YAML mapping, got {type(data).__name__}", where=str(path))
    return data
