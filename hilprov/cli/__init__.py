"""The command line: `ptool` (the seed's flags) and `hilprov` (subcommands). The only layer that
prints for the user and turns errors into exit codes."""

from hilprov.cli.main import main, ptool_main

__all__ = ["main", "ptool_main"]
