"""The compiler: a SymPy loss to a fused, CSE'd program.

``problem`` (the user's spec, checked) -> ``frontend`` (SymPy to the IR of ``ir``, with
the stable forms of ``stable``) -> ``autodiff`` (reverse mode over the IR) ->
``optimize`` (fusion into passes, CSE, the typed program) ; ``pipeline`` runs them in
order. ``functions`` holds symgen's special functions, ``exprparse`` the ``symgen diff``
parser, ``separable`` the row split that distributed training uses.
Imports only ``symgen.errors`` and ``symgen.version`` from outside this folder.
"""
