"""The one exception type the CLI turns into a short message and exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A problem with the user's input: says what, where, and how to fix it. Exit code 2."""

    def __init__(self, what: str, where: str | None = None, fix: str | None = None):
        self.what, self.where, self.fix = what, where, fix
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.where}: {self.what}" if self.where else self.what
        return f"{head}\n  fix: {self.fix}" if self.fix else head


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' Did you mean 'x'?' (or '') for the closest choice to `name`."""
    name, choices = str(name), list(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if not close:  # 'lr_rate' -> 'lr', 'latent' -> 'latent_dim'
        close = [c for c in choices if len(c) >= 2 and (name.startswith(c) or c.startswith(name))][:1]
    return f" Did you mean '{close[0]}'?" if close else ""
