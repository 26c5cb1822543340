"""pydantic validation errors as short messages with key paths; an unknown `type:` names its registry's choices."""

from __future__ import annotations

import re

from pydantic import ValidationError

from sculptcli.errors import did_you_mean
from sculptcli.registry import REGISTRIES

# pydantic's labels for the members of a plain union (`list[float] | float`): 'list[constrained-float]', 'float'
_UNION_MEMBER = re.compile(r"^(list|dict|tuple|set|float|int|str|bool|none|nullable|constrained-\w+)(\[.*\])?$")


def _loc(loc: tuple) -> str:
    names = {name for reg in REGISTRIES.values() for name in reg.names()}
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in names or item.startswith(("function-", "literal[")) or _UNION_MEMBER.match(item):
            continue  # the discriminator's tag or the union member's label pydantic puts in the path
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(top level)"


def format_validation(err: ValidationError, prefix: str = "") -> str:
    lines = []
    registry_by_field = REGISTRIES  # prior, data, model, divergence, terms: each registry under its config key
    for e in err.errors()[:8]:
        where = _loc(tuple(prefix.split(".")) + e["loc"] if prefix else e["loc"])
        msg = e["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if e["type"] == "union_tag_invalid":
            tag = e["ctx"]["tag"]
            last = next((p for p in reversed(where.replace("[", ".").split(".")) if p in registry_by_field), "blocks")
            reg = registry_by_field.get(last, REGISTRIES["prior"])  # a product's blocks are priors
            msg = f"unknown {reg.kind} type '{tag}'.{did_you_mean(tag, reg.names())} Choices: {', '.join(reg.names())}"
            where += ".type"
        elif e["type"] == "union_tag_not_found":
            msg = "missing key 'type'"
        elif e["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"{where}: {msg}")
    more = len(err.errors()) - len(lines)
    if more > 0:
        lines.append(f"... and {more} more")
    return "\n  ".join(lines)
