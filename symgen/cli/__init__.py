"""The ``symgen`` command line: ``commands`` (argparse, the subcommands), ``show``
(``symgen show``), ``specfile`` (loading a SPEC). The top layer: nothing imports it."""

from symgen.cli.commands import main

__all__ = ["main"]
