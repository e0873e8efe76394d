"""Numerically stable forms of scalar expressions, applied before differentiation.

Each rule replaces a form that overflows or loses all precision for large
arguments by an equal one that does not:

- ``log(alpha + beta*sigmoid(z))``, any expression linear in ``sigmoid(z)``
  (such as the naive logistic loss ``log(p*t + (1-p)*(1-t))`` with
  ``p = sigmoid(z)``), is ``log(u*sigmoid(z) + v*sigmoid(-z))`` with
  ``u = alpha + beta``, ``v = alpha``, evaluated as
  ``logaddexp(log(u) + z, log(v)) - softplus(z)``; in particular
  ``log(sigmoid(z))`` → ``-softplus(-z)`` and ``log(1 - sigmoid(z))`` → ``-softplus(z)``
- ``log(1 + exp(z))`` (or ``log1p(exp(z))``) → ``softplus(z)``
- ``log(exp(z))`` → ``z``
- ``1/(1 + exp(-z))`` → ``sigmoid(z)``
- ``a*softplus(-z) + b*softplus(z)`` → ``(a + b)*softplus(z) - a*z`` when shorter
  (the cross-entropy ``t*softplus(-z) + (1 - t)*softplus(z)`` → ``softplus(z) - t*z``)
- the log of a sum of exponentials, ``log(sum_i k_i*exp(z_i))`` (a term without one has
  ``z_i = 0``): with two terms of number coefficients, ``softplus`` (``log(1 + exp(z))``
  → ``softplus(z)``), ``logaddexp``, or ``log1mexp`` for a difference
  (``log(exp(x) - 1)`` → ``x + log1mexp(x)``, ``log(1 - exp(-x))`` → ``log1mexp(x)``);
  otherwise shifted by the largest exponent, ``m + log(sum_i k_i*exp(z_i - m))`` with
  ``m = stop_gradient(Max(z_i))`` (the value does not depend on ``m``, so no gradient
  flows through it)
- the log of a product, factor by factor, for the factors that are positive with a
  stable log (exponentials, sigmoids, ``cosh``, sums of exponentials with positive
  number coefficients, their powers): ``log(exp(a)/(exp(a) + exp(b)))`` →
  ``a - logaddexp(a, b)``, ``log(cosh(r))`` → ``logcosh(r)``
- a ratio of exponentials, ``exp(a)/sum_i k_i*exp(z_i)`` (a softmax written out, the sum's
  coefficients positive numbers; a term without an exponential has ``z_i = 0``), is
  ``exp(a - LSE)`` with ``LSE`` the stable log of the sum above: ``exp(a)/(exp(a) + exp(b)
  + exp(c))`` → ``exp(a - m)/(exp(a - m) + exp(b - m) + exp(c - m))``, ``m`` the largest
  exponent (no gradient through it), ``exp(a)/(exp(a) + exp(b))`` →
  ``exp(a - logaddexp(a, b))``, ``exp(a)/(1 + exp(a))`` → ``exp(a - softplus(a))``; so is
  ``1/sum_i k_i*exp(z_i)`` when every term has an exponential
- ``k*exp(z) - k`` → ``k*expm1(z)``, and ``log(1 + x)`` → ``log1p(x)``
- ``c*log(c**k * r)`` → ``k*xlogy(c, c) + c*log(r)``, with ``xlogy(0, y) = 0``: the
  convention ``0*log(0) = 0`` of entropies (``x*log(x)``), KL divergences
  (``t*log(t/p)``) and Poisson deviances (``y*log(y/mu)``); ``c*log(f)`` for a factor
  ``f`` of ``r`` without a stable log is ``xlogy(c, f)`` too, so the gradient in ``f``
  where ``c = 0`` is 0 (``xdivy(c, f)``). ``c*(log(c) - log(p))`` is distributed first.
  ``xlogy(c, f)`` for an ``f`` with a stable log (``sigmoid(z)``) is ``c`` times it.

``softplus``, ``sigmoid``, ``logaddexp``, ``logcosh`` and ``log1mexp`` are printed in
stable forms, and their derivatives (``sigmoid``, ``sigmoid*(1-sigmoid)``, ``tanh``,
``exp(-x)/(-expm1(-x))``) stay finite, so the rewritten loss has a finite gradient
wherever the loss is finite.
"""

from __future__ import annotations

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from symgen.compiler.scalar_functions import (
    log1mexp,
    logaddexp,
    logcosh,
    safelog,
    sigmoid,
    softplus,
    stop_gradient,
    xlogy,
)


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
    if u.is_number:
        return sp.log(u)
    positive = _positive_log(u)
    return safelog(sp.factor_terms(u)) if positive is None else positive


def _log_of(arg: sp.Expr) -> sp.Expr | None:
    linear = _log_linear_in_sigmoid(arg)
    if linear is not None:
        return linear
    positive = _positive_log(arg)
    if positive is not None:
        return positive
    k, rest = arg.as_coeff_Mul()
    if isinstance(rest, expm1):  # k*(exp(z) - 1)
        return _log_of_sum([(k, rest.args[0]), (-k, sp.S.Zero)])
    if arg.is_Mul:
        return _log_of_product(arg)
    if arg.is_Add:
        terms = _exp_terms(arg)
        if terms is not None:
            return _log_of_sum(terms)
        if sp.S.One in arg.args:
            return log1p(arg - 1)
    return None


def _exp_terms(arg: sp.Expr) -> list[tuple[sp.Expr, sp.Expr]] | None:
    """The terms ``(k, z)`` of a sum ``sum k*exp(z)`` (``z = 0`` for a term without an
    exponential), or None when no exponential in it varies."""
    terms = []
    for term in sp.Add.make_args(arg):
        exps = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.exp)]
        z = sp.Add(*[e.args[0] for e in exps])
        terms.append((term / sp.Mul(*exps), z))
    if len(terms) < 2 or all(z.is_number for _, z in terms):
        return None
    return terms


def _log_of_sum(terms: list[tuple[sp.Expr, sp.Expr]]) -> sp.Expr | None:
    """``log(sum k*exp(z))`` for the terms ``(k, z)``, finite however large the ``z``."""
    if len(terms) == 2 and all(k.is_number and k.is_nonzero for k, _ in terms):
        # w = z + log|k|: the terms are +-exp(w)
        (k1, z1), (k2, z2) = sorted(terms, key=lambda t: (t[0].is_negative, not t[1].is_number))
        if k1.is_negative:
            return None  # a negative sum: no real log
        w1, w2 = z1 + _log(k1), z2 + _log(abs(k2))
        if k2.is_negative:  # exp(w1) - exp(w2) = exp(w1)*(1 - exp(-(w1 - w2)))
            return w1 + log1mexp(w1 - w2)
        if w1.is_number:  # a constant and an exponential: a softplus
            return w1 + softplus(w2 - w1)
        return logaddexp(w1, w2)
    m = stop_gradient(sp.Max(*dict.fromkeys(z for _, z in terms)))
    return m + sp.log(sp.Add(*[k * sp.exp(z - m) for k, z in terms]))


def _positive_log(f: sp.Expr) -> sp.Expr | None:
    """``log(f)`` in a stable form, for an ``f`` positive whatever its arguments that has
    one (exponentials, sigmoids, cosh, sums of exponentials with positive number
    coefficients, products and real powers of these); None otherwise."""
    if isinstance(f, sp.exp):
        return f.args[0]
    if isinstance(f, sigmoid):
        return -softplus(-f.args[0])
    if isinstance(f, sp.cosh):
        return logcosh(f.args[0])
    if f.is_Pow and f.exp.is_real and f.exp.is_number:
        base = _positive_log(f.base)
        return None if base is None else f.exp * base
    if f.is_Mul:
        coeff, factors = f.as_coeff_mul()
        logs = [_positive_log(g) for g in factors]
        if coeff.is_positive and None not in logs:
            return _log(coeff) + sp.Add(*logs)
        return None
    if f.is_Add:
        terms = _exp_terms(f)
        if terms is not None and all(k.is_number and k.is_positive for k, _ in terms):
            return _log_of_sum(terms)
    return None


def _log_of_product(arg: sp.Expr) -> sp.Expr | None:
    """``log(f*g*...)`` as ``log(f) + log(g*...)`` for the factors ``f`` with a stable
    positive log; None when there is none, or the rest is a negative number."""
    logs, rest = [], []
    for f in sp.Mul.make_args(arg):
        positive = _positive_log(f)
        (rest if positive is None else logs).append(positive if positive is not None else f)
    remaining = sp.Mul(*rest)
    if not logs or (remaining.is_number and not remaining.is_positive):
        return None
    if remaining == 1:
        return sp.Add(*logs)
    return sp.Add(*logs) + (_log_of(remaining) or sp.log(remaining))


def _expm1(expr: sp.Expr) -> sp.Expr:
    """``k*exp(z) - k`` → ``k*expm1(z)`` (exact for small ``z``)."""
    if len(expr.args) != 2:
        return expr
    for term, other in (expr.args, expr.args[::-1]):
        exps = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.exp)]
        if len(exps) == 1:
            k = term / exps[0]
            if other == -k and not k.has(sp.exp):
                return k * expm1(exps[0].args[0])
    return expr


def _xlogy_match(expr: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr] | None:
    """``(c, k, log(u))`` for a product ``c**j * log(u) * ...`` (an integer ``j >= 1``)
    whose log's argument ``u`` has the factor ``c**k`` (a number ``k``), where ``log(c)``
    has no stable form (a target, a count, a probability); ``c`` is the product of all
    such factors with the same ``k`` (``a*u*log(a*u)``: ``c = a*u``)."""
    factors = sp.Mul.make_args(expr)
    logs = [f for f in factors if isinstance(f, sp.log)]
    if len(logs) != 1:
        return None
    (lg,) = logs
    powers = sp.Mul(*[f for f in factors if f is not lg]).as_powers_dict()
    inside = lg.args[0].as_powers_dict()
    shared: dict[sp.Expr, list[sp.Expr]] = {}
    for c in sorted(powers, key=sp.default_sort_key):
        j, k = powers[c], inside.get(c, sp.S.Zero)
        if c.is_number or not (j.is_Integer and j >= 1) or not (k.is_number and k.is_nonzero):
            continue
        if _positive_log(c) is None and _log_linear_in_sigmoid(c) is None:
            shared.setdefault(k, []).append(c)
    if not shared:
        return None
    k, cs = max(shared.items(), key=lambda item: len(item[1]))  # the first of equals
    return sp.Mul(*cs), k, lg


def _xlogy_form(expr: sp.Expr, binary: frozenset) -> sp.Expr | None:
    """``c*log(c**k * r)`` → ``k*xlogy(c, c) + c*log(r)``, ``c*log(r)`` factor by factor
    (``xlogy(c, f)`` where ``log(f)`` has no stable form), so that the term and its
    gradient are 0 where ``c = 0``; None when ``expr`` is no such product. A product with
    a sum holding such a term is distributed first: ``t*(log(t) - log(p))``."""
    match = _xlogy_match(expr)
    if match is None:
        for f in sp.Mul.make_args(expr):
            rest = expr / f
            if f.is_Add and any(_xlogy_match(rest * term) for term in f.args):
                return stabilize(sp.Add(*[rest * term for term in f.args]), binary)
        return None
    c, k, lg = match
    remainder = lg.args[0] / c**k
    coeff, factors = remainder.as_coeff_mul()
    if not coeff.is_positive:
        return None  # the log of a negative number: left as written
    c_stable = stabilize(c, binary)
    parts = [k * xlogy(c_stable, c_stable), c_stable * _log(coeff)]
    for f in factors:
        sign = -1 if f.is_Pow and f.exp.is_negative else 1  # log(1/g) = -log(g)
        base, e = (f**sign).as_base_exp()
        if not (e.is_Integer and e % 2 == 1):  # log(g**e) = e*log(g) only for odd e
            base, e = f**sign, sp.S.One
        stable = stabilize(sp.log(base), binary)
        if isinstance(stable, (sp.log, log1p)):
            parts.append(sign * e * xlogy(c_stable, stabilize(base, binary)))
        else:
            parts.append(sign * e * c_stable * stable)
    return stabilize(expr / (lg * c), binary) * sp.Add(*parts)


def _ratio_of_exps(expr: sp.Expr, binary: frozenset) -> sp.Expr | None:
    """``exp(a)*r/(sum_i k_i*exp(z_i))**p`` → ``r*exp(a - p*LSE)`` (``LSE`` by
    ``_log_of_sum``), finite where the ratio is; None when ``expr`` has no such sum in its
    denominator, or neither an exponential over it nor one in each of its terms (``t/(1 +
    exp(-z))`` is ``t*sigmoid(z)``). A sum already shifted by its maximum is left alone."""
    factors = sp.Mul.make_args(expr)
    exps = [f for f in factors if isinstance(f, sp.exp)]
    sums = {}
    for f in factors:
        if not (f.is_Pow and f.exp.is_number and f.exp.is_negative):
            continue
        terms = _exp_terms(f.base)
        if terms is None or any(z.has(stop_gradient) for _, z in terms):
            continue
        if all(k.is_number and k.is_positive for k, _ in terms):
            if exps or not any(z.is_number for _, z in terms):
                sums[f] = terms
    if not sums:
        return None
    rest = sp.Mul(*[f for f in factors if f not in sums and f not in exps])
    exponent = sp.Add(*[stabilize(e.args[0], binary) for e in exps])
    for f, terms in sums.items():
        stable = [(k, stabilize(z, binary)) for k, z in terms]
        exponent -= -f.exp * _log_of_sum(stable)
    return stabilize(rest, binary) * sp.exp(exponent)


def _within_log(arg: sp.Expr, binary: frozenset) -> sp.Expr:
    """The argument of a log, stabilized; a ratio of exponentials is left to the log's own
    rules (``log(exp(a)/sum) = a - LSE``), its factors stabilized."""
    if not ((arg.is_Mul or arg.is_Pow) and arg.has(sp.exp) and _ratio_of_exps(arg, binary)):
        return stabilize(arg, binary)

    def factor(f: sp.Expr) -> sp.Expr:
        return sp.Pow(stabilize(f.base, binary), f.exp) if f.is_Pow else stabilize(f, binary)

    return factor(arg) if arg.is_Pow else sp.Mul(*[factor(f) for f in arg.args])


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
    # each x stands for a symbol of its own while the products are expanded and collected,
    # so that a*x keeps x whole (t*(x1 + b), not t*x1 + t*b: one product, x computed once)
    whole = {x: sp.Dummy(f"x{i}") for i, x in enumerate(pairs)}
    simpler = sp.expand_mul(expr.xreplace({softplus(-x): softplus(x) - whole[x] for x in pairs}))
    simpler = sp.collect(simpler, [softplus(x) for x in pairs] + list(whole.values()))
    simpler = simpler.xreplace({d: x for x, d in whole.items()})
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
    if expr.is_Mul and expr.has(sp.log):  # before log(t) is split or rewritten
        zero = _xlogy_form(expr, binary)
        if zero is not None:
            return zero
    if (expr.is_Mul or expr.is_Pow) and expr.has(sp.exp):  # before 1/(1 + exp(x)) is sigmoid
        ratio = _ratio_of_exps(expr, binary)
        if ratio is not None:
            return ratio
    if isinstance(expr, sp.log):
        args = [_within_log(expr.args[0], binary)]
    else:
        args = [stabilize(a, binary) for a in expr.args]
    e = expr.func(*args) if args != list(expr.args) else expr
    if isinstance(e, sp.log) and binary:
        split = _split_binary(e.args[0], binary)
        if split is not None:
            return _complementary_softplus(sp.expand_mul(split))
    if e.is_Add and len(e.atoms(softplus)) > 1:
        return _complementary_softplus(e)
    if e.is_Add:
        return _expm1(e)
    if isinstance(e, sp.log):
        return _log_of(e.args[0]) or e
    if isinstance(e, log1p):  # as written by the user: log1p(exp(z)) is softplus(z)
        return _log_of(1 + e.args[0]) or e
    if isinstance(e, xlogy):  # xlogy(c, sigmoid(z)) = -c*softplus(-z): finite, 0 where c is
        stable = _positive_log(e.args[1]) or _log_linear_in_sigmoid(e.args[1])
        return e if stable is None or stable.has(sp.log, safelog) else e.args[0] * stable
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
