"""Numerically stable forms of scalar expressions, applied before differentiation.

Each rule replaces a form that overflows or loses all precision for large
arguments by an equal one that does not:

- ``log(alpha + beta*sigmoid(z))``, any expression linear in ``sigmoid(z)``
  (such as the naive logistic loss ``log(p*t + (1-p)*(1-t))`` with
  ``p = sigmoid(z)``), is ``log(u*sigmoid(z) + v*sigmoid(-z))`` with
  ``u = alpha + beta``, ``v = alpha``, evaluated as
  ``logaddexp(log(u) + z, log(v)) - softplus(z)``; in particular
  ``log(sigmoid(z))`` → ``-softplus(-z)`` and ``log(1 - sigmoid(z))`` → ``-softplus(z)``
- ``log(1 + exp(z))`` → ``softplus(z)``
- ``log(exp(z))`` → ``z``
- ``1/(1 + exp(-z))`` → ``sigmoid(z)``
- ``a*softplus(-z) + b*softplus(z)`` → ``(a + b)*softplus(z) - a*z`` when shorter
  (the cross-entropy ``t*softplus(-z) + (1 - t)*softplus(z)`` → ``softplus(z) - t*z``)

``softplus`` and ``sigmoid`` are printed in stable forms (``logaddexp``,
``tanh``), and their derivatives (``sigmoid``, ``sigmoid*(1-sigmoid)``) stay
finite, so the rewritten loss has a finite gradient wherever the loss is
finite.
"""

from __future__ import annotations

import sympy as sp

from symgen.compiler.scalar_functions import logaddexp, safelog, sigmoid, softplus


def _log_linear_in_sigmoid(arg: sp.Expr) -> sp.Expr | None:
    sigmoids = arg.atoms(sigmoid)
    if len(sigmoids) != 1:
        return None
    (sig,) = sigmoids
    z = sig.args[0]
    s = sp.Dummy("s")
    linear = sp.expand(arg.xreplace({sig: s}))
    if linear.diff(s, 2) != 0:
        return None
    v = linear.subs(s, 0)
    u = sp.expand(v + linear.diff(s))
    if v == 0:
        return _log(u) - softplus(-z)
    if u == 0:
        return _log(v) - softplus(z)
    # u*sigmoid(z) + v*sigmoid(-z) = (u*exp(z) + v) / (1 + exp(z)): one logaddexp, one softplus
    return logaddexp(_log(u) + z, _log(v)) - softplus(z)


def _log(u: sp.Expr) -> sp.Expr:
    if u == 1:
        return sp.S.Zero
    return sp.log(u) if u.is_number else safelog(sp.factor_terms(u))


def _log_of(arg: sp.Expr) -> sp.Expr | None:
    linear = _log_linear_in_sigmoid(arg)
    if linear is not None:
        return linear
    if isinstance(arg, sp.exp):
        return arg.args[0]
    if arg.is_Add and len(arg.args) == 2 and sp.S.One in arg.args:
        other = arg - 1
        if isinstance(other, sp.exp):
            return softplus(other.args[0])
    return None


def _reciprocal(base: sp.Expr) -> sp.Expr | None:
    if base.is_Add and len(base.args) == 2 and sp.S.One in base.args:
        other = base - 1
        if isinstance(other, sp.exp):
            return sigmoid(-other.args[0])
    return None


def _complementary_softplus(expr: sp.Expr) -> sp.Expr:
    """``a*softplus(-x) + b*softplus(x)`` → ``(a + b)*softplus(x) - a*x`` (softplus(-x) =
    softplus(x) - x), kept only when shorter: the cross-entropy
    ``t*softplus(-z) + (1 - t)*softplus(z)`` becomes ``softplus(z) - t*z``."""
    xs = {s.args[0] for s in expr.atoms(softplus)}
    pairs = sorted(
        (x for x in xs if -x in xs and not x.could_extract_minus_sign()),
        key=sp.default_sort_key,
    )
    if not pairs:
        return expr
    simpler = sp.expand_mul(expr.xreplace({softplus(-x): softplus(x) - x for x in pairs}))
    simpler = sp.collect(simpler, [softplus(x) for x in pairs])
    return simpler if sp.count_ops(simpler) < sp.count_ops(expr) else expr


def _split_binary(arg: sp.Expr, binary: frozenset) -> sp.Expr | None:
    """``log(f(t))`` for ``t`` in {0, 1}: ``t*log(f(1)) + (1 - t)*log(f(0))``."""
    for t in sorted(arg.free_symbols & binary, key=lambda s: s.name):
        one, zero = arg.xreplace({t: sp.S.One}), arg.xreplace({t: sp.S.Zero})
        return t * stabilize(sp.log(one), binary) + (1 - t) * stabilize(sp.log(zero), binary)
    return None


def stabilize(expr: sp.Expr, binary: frozenset = frozenset()) -> sp.Expr:
    """``expr`` with the unstable forms above rewritten, bottom up; ``binary``: symbols
    known to be 0 or 1, on which a ``log`` is split into its two cases."""
    if not expr.args:
        return expr
    args = [stabilize(a, binary) for a in expr.args]
    e = expr.func(*args) if args != list(expr.args) else expr
    if isinstance(e, sp.log) and binary:
        split = _split_binary(e.args[0], binary)
        if split is not None:
            return _complementary_softplus(sp.expand_mul(split))
    if e.is_Add and len(e.atoms(softplus)) > 1:
        return _complementary_softplus(e)
    if isinstance(e, sp.log):
        return _log_of(e.args[0]) or e
    if e.is_Pow and e.exp == -1:
        return _reciprocal(e.base) or e
    return e


def _softplus_pairs(expr: sp.Expr) -> sp.Expr:
    """``c*softplus(x) - c*softplus(-x)`` → ``c*x`` in a sum (softplus(x) - softplus(-x) = x)."""
    terms = list(sp.Add.make_args(expr))
    for i, term in enumerate(terms):
        coeff, rest = term.as_coeff_Mul()
        if not isinstance(rest, softplus):
            continue
        x = rest.args[0]
        partner = -coeff * softplus(-x)
        if partner in terms[i + 1 :] or partner in terms[:i]:
            j = terms.index(partner)
            remaining = [t for k, t in enumerate(terms) if k not in (i, j)]
            return _softplus_pairs(sp.Add(*remaining, coeff * x))
    return expr


def _sigmoid_pairs(expr: sp.Expr) -> sp.Expr:
    """``c*sigmoid(a)*sigmoid(-b) - c*sigmoid(-a)*sigmoid(b)`` → ``c*(sigmoid(a) - sigmoid(b))``.

    (Expand sigmoid(-x) = 1 - sigmoid(x): the products cancel.) This is the derivative
    of the stable logistic forms; it halves their cost."""
    terms = list(sp.Add.make_args(expr))
    for i, term in enumerate(terms):
        coeff, rest = term.as_coeff_Mul()
        factors = sp.Mul.make_args(rest)
        sigmoids = [f for f in factors if isinstance(f, sigmoid)]
        if len(sigmoids) != 2:
            continue
        others = sp.Mul(*[f for f in factors if not isinstance(f, sigmoid)])
        for first, second in (sigmoids, sigmoids[::-1]):
            a, minus_b = first.args[0], second.args[0]
            partner = -coeff * others * sigmoid(-a) * sigmoid(-minus_b)
            rest_terms = terms[:i] + terms[i + 1 :]
            if partner in rest_terms:
                rest_terms.remove(partner)
                simpler = coeff * others * (sigmoid(a) - sigmoid(-minus_b))
                return _sigmoid_pairs(sp.Add(*rest_terms, simpler))
    return expr


def _complementary_sigmoids(expr: sp.Expr) -> sp.Expr:
    """``c*sigmoid(x) + c*sigmoid(-x)`` → ``c`` (after expanding products that hold both);
    kept only when shorter: ``t*sigmoid(-z) - (1 - t)*sigmoid(z)`` → ``t - sigmoid(z)``."""
    args = {s.args[0] for s in expr.atoms(sigmoid)}
    if not any(-x in args for x in args):
        return expr
    terms = list(sp.Add.make_args(sp.expand_mul(expr)))
    changed = True
    while changed:
        changed = False
        for i, term in enumerate(terms):
            for s in (f for f in sp.Mul.make_args(term) if isinstance(f, sigmoid)):
                coeff = term / s
                partner = coeff * sigmoid(-s.args[0])
                rest = terms[:i] + terms[i + 1 :]
                if partner in rest:
                    rest.remove(partner)
                    terms, changed = [*rest, coeff], True
                    break
            if changed:
                break
    simpler = sp.Add(*terms)
    return simpler if sp.count_ops(simpler) < sp.count_ops(expr) else expr


def simplify_derivative(expr: sp.Expr) -> sp.Expr:
    """Identities of the stable forms, applied to a derivative, bottom up."""
    if not expr.args:
        return expr
    args = [simplify_derivative(a) for a in expr.args]
    e = expr.func(*args) if args != list(expr.args) else expr
    if e.is_Add:
        e = _complementary_sigmoids(_sigmoid_pairs(_softplus_pairs(e)))
    return e
