"""How many held-out images a setting means on a given split: shared by training, scoring and the readers."""

from __future__ import annotations

from sculptcli.errors import UserError


def heldout_size(spec, key: str, held: int, asked: int | None = None) -> int:
    """How many held-out images `spec.<key>` (or an explicit `asked`) means on a split of `held`: the default
    shrinks to a smaller split; a number the user chose that the split cannot give is refused (exit 2)."""
    n = asked if asked is not None else getattr(spec, key)
    if n <= held:
        return n
    if asked is None and n == type(spec).model_fields[key].default:
        return held
    raise UserError(
        f"{type(spec).__name__.removesuffix('Spec').lower()}.{key} is {n} but the held-out split has {held} images"
        if asked is None
        else f"asked for {n} held-out images but the split has {held}",
        fix=f"use {held} or fewer (or a larger held-out split)",
    )
