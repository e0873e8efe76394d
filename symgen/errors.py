"""Exceptions raised by symgen."""


class SpecError(ValueError):
    """A problem specification that symgen cannot turn into code.

    The message names the offending piece (a symbol, a SymPy node, a file) and,
    where there is a choice, what is supported instead.
    """
