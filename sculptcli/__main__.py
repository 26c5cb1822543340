"""`python -m sculptcli` runs the CLI (also the entry point torchrun uses)."""

from sculptcli.cli.app import main

if __name__ == "__main__":
    main()
