"""The `sculpt` command: subcommands train, score, presets (and later traverse, copy-latent, prior)."""

from __future__ import annotations

import typer

from sculptcli import __version__
from sculptcli.cli import checks, compare, copy_latent, presets, prior, score, train, traverse

app = typer.Typer(
    name="sculpt",
    help="Sculpt autoencoder latent spaces to declared priors with MMD, and measure what you get.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command(
    "train",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help=train.train.__doc__,
)(train.train)
app.command("score", help=score.score.__doc__)(score.score)
app.command("compare", help=compare.compare.__doc__)(compare.compare)
app.command("traverse", help=traverse.traverse.__doc__)(traverse.traverse)
app.command(
    "copy-latent",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help=copy_latent.copy_latent.__doc__,
)(copy_latent.copy_latent)
app.command("checks", help=checks.checks.__doc__)(checks.checks)
app.add_typer(presets.app, name="presets")
app.add_typer(prior.app, name="prior")


def _version(value: bool):
    if value:
        typer.echo(f"sculpt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
):
    pass


def main() -> None:
    app()
