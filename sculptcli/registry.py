"""Registries by name: each kind of component (prior, divergence, dataset, model) is one
pydantic spec class registered under the literal value of its `type` field."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sculptcli.errors import UserError, did_you_mean

T = TypeVar("T", bound=type[BaseModel])
REGISTRIES: dict[str, Registry] = {}  # config key -> the registry of the types it takes (filled as registries are made)


class Spec(BaseModel):
    """Base of every config model: unknown keys are refused with a did-you-mean."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias}
            for key in data:
                if key not in known:
                    raise ValueError(
                        f"unknown key '{key}'.{did_you_mean(key, known)} Known keys: {', '.join(sorted(known))}"
                    )
        return data


class Registry:
    """Name -> spec class. `register` is a class decorator; `union()` is the pydantic type
    that validates any registered spec by its `type` field. Each registry also lists itself in `REGISTRIES` under
    the config key that selects its members (`field`: prior, data, model, divergence, terms), so error messages
    and help text find every registry's choices without importing the packages that define them."""

    def __init__(self, kind: str, field: str | None = None):
        self.kind = kind
        self.field = field or kind
        self._classes: dict[str, type[BaseModel]] = {}
        REGISTRIES[self.field] = self

    def register(self, cls: T) -> T:
        field = cls.model_fields.get("type")
        args = get_args(field.annotation) if field else ()
        if not args or field.annotation is None or getattr(field.annotation, "__origin__", None) is not Literal:
            raise TypeError(f"{cls.__name__} needs a field `type: Literal['name']`")
        name = args[0]
        if name in self._classes:
            raise TypeError(f"{self.kind} '{name}' registered twice")
        self._classes[name] = cls
        return cls

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> type[BaseModel]:
        try:
            return self._classes[name]
        except KeyError:
            raise UserError(
                f"unknown {self.kind} '{name}'.{did_you_mean(name, self._classes)}",
                fix=f"choose one of: {', '.join(self.names())}",
            ) from None

    def items(self):
        return sorted(self._classes.items())

    def union(self) -> Any:
        """An annotated discriminated union over everything registered so far."""
        classes = tuple(self._classes.values())
        if len(classes) == 1:
            return classes[0]
        return Annotated[Union[classes], Field(discriminator="type")]  # noqa: UP007
