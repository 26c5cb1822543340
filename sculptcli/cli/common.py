"""What every command shares: the consoles and the wrapper that turns UserError into exit code 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from sculptcli.errors import UserError

console = Console()
err_console = Console(stderr=True)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command; a UserError prints 'error: …' on stderr and exits 2, with no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            err_console.print(f"[bold red]error:[/] {escape(e.render())}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def is_tty() -> bool:
    return sys.stdout.isatty()


def overrides_from(ctx: typer.Context, command: str) -> list[str]:
    """The extra `key=value` arguments of a command; anything else is an unknown option (UserError)."""
    args = list(ctx.args)
    stray = [a for a in args if "=" not in a]
    if stray:
        raise UserError(
            f"unknown option or argument: {' '.join(stray)}",
            fix=f"options are listed by `sculpt {command} --help`; overrides look like train.lr=1e-3",
        )
    return args
