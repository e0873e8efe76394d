"""Second order (issue 19): Hessians and Hessian-vector products against hand-written code and
the frameworks, and ``hvp``'s cost against ``loss_and_grad``'s.

Workloads (keys):

- ``hessian-logistic-D``: the Hessian of logistic regression, N = 10 D samples, D features
  (matrixcalculus.org/GENO's benchmark). Reference: the expert's structured form
  ``X.T @ (s[:, None] * X)`` with ``s = sigmoid(z) (1 - sigmoid(z))``, ``z = X w``.
- ``hessian-quadratic-D``: the Hessian of ``x.T A x`` (reference: ``A + A.T``).
- ``hvp-factorization``: a Hessian-vector product of GENO's matrix factorization
  ``sum((Omega ⊙ (T - U V.T))**2)`` with respect to ``U`` (reference:
  ``2 ((Omega ⊙ Omega ⊙ (dU V.T)) V)``).
- ``hvp-w3-seed``, ``hvp-w3-large``, ``hvp-w4-100000``: symgen's ``hvp`` against its own
  ``loss_and_grad`` (the reference here), the issue's bound: at most 2.5x.

Frameworks: JAX ``jit(hessian)`` (or ``jit`` of ``jvp`` over ``grad``), ``torch.func.hessian``
(``jvp`` over ``grad``), autograd ``hessian`` (``hessian_vector_product``), PyTensor's
``hessian`` (``hessian_vector_product``), each missing ones reported, not timed. Every
contender returns one array (the Hessian, or H v), compared with symgen's before timing.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

import symgen

from . import frameworks
from .correctness import check_arrays
from .machine import version
from .timing import Contender

SYMGEN = "symgen `hessian` (generated)"
SYMGEN_C = "symgen `hessian`, C backend (generated)"
SYMGEN_HVP = "symgen `hvp` (generated)"
SYMGEN_HVP_C = "symgen `hvp`, C backend (generated)"
REFERENCE = "hand-written NumPy (expert)"
LOSS_AND_GRAD = "symgen `loss_and_grad` (generated)"

#: The feature counts of the logistic Hessian, the sizes of the quadratic form.
LOGISTIC_D = (16, 64, 256, 1024)
QUADRATIC_D = (64, 1024)
#: Matrix factorization: T is M x N, U is M x R, V is N x R.
FACTORIZATION = (1000, 500, 20)

RTOL = 1e-9  # per array, relative to its largest |element|


# -- the logistic Hessian -------------------------------------------------------------------


def logistic_data(d: int, seed: int = 0) -> dict:
    n = 10 * d
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal((d, 1)) / np.sqrt(d)  # z = X w of standard deviation about 1
    t = (rng.random((n, 1)) < 0.5).astype(float)
    return {"w": w, "X": X, "t": t, "wf": w.ravel(), "tf": t.ravel()}


def logistic_hessian_numpy(wf, X):
    """The expert's Hessian: s = p (1 - p) with p = sigmoid(X w) by tanh (never overflows),
    then ``X.T @ (s[:, None] * X)``."""
    p = 0.5 * np.tanh(0.5 * (X @ wf)) + 0.5
    s = p * (1.0 - p)
    return X.T @ (s[:, None] * X)


def _logistic_loss(np_, wf, X, tf):
    z = X @ wf
    return np_.sum(np_.logaddexp(np_.zeros_like(z), z) - tf * z)


def logistic_contenders(d: int) -> list[Contender]:
    from examples.logistic import logistic

    data = logistic_data(d)
    out = [
        Contender(
            SYMGEN,
            "hessian(w, X, t)",
            {"hessian": symgen.compile(logistic).hessian},
            note="`symgen.compile(examples.logistic.logistic)`: z = X @ w; for at most 32 "
            "columns of one block of rows (N D <= 131,072) s = exp(-|z|)/(1 + exp(-|z|))², "
            "`X.T @ (s * X)` (BLAS gemm), symmetrized; beyond, the column "
            "exp(-|z|/2)/(1 + exp(-|z|)) = sqrt(s), B = X * it, `B.T @ B` (BLAS syrk)",
        ),
        frameworks.symgen_c_contender(
            SYMGEN_C, logistic, "examples.logistic.logistic", "hessian(w, X, t)", "the same"
        ),
        Contender(
            REFERENCE,
            "hessian(wf, X)",
            {"hessian": logistic_hessian_numpy},
            note="reference; p = sigmoid(X w) by `tanh`, s = p (1 - p), `X.T @ (s[:, None] * X)`",
        ),
        *_framework_hessians(_logistic_loss, ("wf", "X", "tf"), data),
    ]
    return _bound(out, data)


# -- the quadratic form ---------------------------------------------------------------------


def quadratic_problem() -> symgen.Problem:
    n = sp.Symbol("D", integer=True, positive=True)
    x, A = sp.MatrixSymbol("x", n, 1), sp.MatrixSymbol("A", n, n)
    return symgen.Problem(x.T * A * x, params=[x], data=[A], name="quadratic")


def quadratic_data(d: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x, A = rng.standard_normal((d, 1)), rng.standard_normal((d, d))
    return {"x": x, "A": A, "xf": x.ravel()}


def _quadratic_loss(np_, xf, A):
    return xf @ (A @ xf)


def quadratic_contenders(d: int) -> list[Contender]:
    problem = quadratic_problem()
    data = quadratic_data(d)
    out = [
        Contender(
            SYMGEN,
            "hessian(x, A)",
            {"hessian": symgen.compile(problem).hessian},
            note="`symgen.Problem(x.T*A*x, params=[x], data=[A])`: `A + A.T` (exactly "
            "symmetric as computed)",
        ),
        frameworks.symgen_c_contender(
            SYMGEN_C, problem, "the same problem", "hessian(x, A)", "the same"
        ),
        Contender(REFERENCE, "A + A.T", {}, note="reference"),
        *_framework_hessians(_quadratic_loss, ("xf", "A"), data),
    ]
    return _bound(out, data)


# -- matrix factorization: H v with respect to U --------------------------------------------


def factorization_problem() -> symgen.Problem:
    m, n, r = sp.symbols("M N R", integer=True, positive=True)
    U, V = sp.MatrixSymbol("U", m, r), sp.MatrixSymbol("V", n, r)
    T, Omega = sp.MatrixSymbol("T", m, n), sp.MatrixSymbol("Omega", m, n)
    loss = symgen.sum(symgen.square(sp.HadamardProduct(Omega, T - U * V.T)))
    return symgen.Problem(loss, params=[U], data=[V, T, Omega], name="factorization")


def factorization_data(seed: int = 0) -> dict:
    m, n, r = FACTORIZATION
    rng = np.random.default_rng(seed)
    return {
        "U": rng.standard_normal((m, r)),
        "V": rng.standard_normal((n, r)),
        "T": rng.standard_normal((m, n)),
        "Omega": (rng.random((m, n)) < 0.3).astype(float),
        "dU": rng.standard_normal((m, r)),
    }


def factorization_hvp_numpy(dU, V, Omega):
    """H dU = 2 ((Omega ⊙ Omega ⊙ (dU V.T)) V): two products and one elementwise pass."""
    return 2.0 * ((Omega * Omega * (dU @ V.T)) @ V)


def _factorization_loss(np_, U, V, T, Omega):
    return np_.sum((Omega * (T - U @ V.T)) ** 2)


def factorization_contenders() -> list[Contender]:
    problem = factorization_problem()
    data = factorization_data()
    generated = symgen.compile(problem)
    out = [
        Contender(
            SYMGEN_HVP,
            "hvp(U, V, T, Omega, v=(dU,))[0]",
            {"hvp": generated.hvp},
            note="`symgen.Problem(sum((Omega ⊙ (T - U*V.T))**2), params=[U])`",
        ),
        Contender(
            REFERENCE,
            "hvp(dU, V, Omega)",
            {"hvp": factorization_hvp_numpy},
            note="reference; `2 * ((Omega * Omega * (dU @ V.T)) @ V)`",
        ),
        *_framework_hvps(_factorization_loss, ("U", "V", "T", "Omega"), "dU", data),
    ]
    try:
        c_module = symgen.compile(problem, "c")
        c_module._lib()
        out.insert(
            1,
            Contender(
                SYMGEN_HVP_C,
                "hvp(U, V, T, Omega, v=(dU,))[0]",
                {"hvp": c_module.hvp},
                note="the same, C backend",
            ),
        )
    except RuntimeError as exc:
        out.insert(1, Contender(SYMGEN_HVP_C, missing=f"not available: {exc}"))
    return _bound(out, data)


# -- hvp against loss_and_grad (W3, W4) -----------------------------------------------------


def hvp_against_gradient(key: str) -> tuple[list[Contender], dict]:
    """symgen's loss_and_grad (the reference) and hvp, NumPy and C, on W3 or W4."""
    if key.startswith("w4-"):
        from examples.curve_fit import START, curve_fit, synthetic

        t, y = synthetic(n=int(key.removeprefix("w4-")))
        problem, args = curve_fit, (*START, t, y)
        directions = tuple(float(k) for k in range(1, 7))
        names = [f"p{i}" for i in range(len(args))]
    else:
        from examples.mlp import mlp

        from .mlp_grad import data

        w1, w2, x, y = data(key.removeprefix("w3-"))
        problem = mlp
        args = (w1, w2, x, y)
        rng = np.random.default_rng(3)
        directions = tuple(rng.standard_normal(a.shape).astype(np.float32) for a in (w1, w2))
        names = ["W1", "W2", "X", "Y"]
    call = ", ".join(names)
    bindings = {**dict(zip(names, args, strict=True)), "directions": directions}
    out = []
    for backend, hvp_name, grad_name in (
        ("numpy", SYMGEN_HVP, LOSS_AND_GRAD),
        ("c", SYMGEN_HVP_C, "symgen `loss_and_grad`, C backend (generated)"),
    ):
        try:
            module = symgen.compile(problem, backend)
            if hasattr(module, "_lib"):
                module._lib()
        except RuntimeError as exc:
            out += [Contender(n, missing=f"not available: {exc}") for n in (hvp_name, grad_name)]
            continue
        out.append(
            Contender(hvp_name, f"hvp({call}, v=directions)", {"hvp": module.hvp}, note=backend)
        )
        out.append(
            Contender(
                grad_name,
                f"loss_and_grad({call})",
                {"loss_and_grad": module.loss_and_grad},
                note="reference" if backend == "numpy" else backend,
            )
        )
    return _bound(out, bindings), bindings


# -- frameworks -----------------------------------------------------------------------------


def _bound(contenders: list[Contender], data: dict) -> list[Contender]:
    """Each contender's namespace with the data (NumPy names; JAX ``j``- and PyTorch
    ``t``-prefixed ones for the frameworks imported)."""
    arrays = {k: v for k, v in data.items() if isinstance(v, np.ndarray)}
    shared = frameworks.shared_arrays(arrays)
    for c in contenders:
        c.namespace.update({**data, **shared})
    return contenders


#: Parameters from which autograd's ``hessian`` (one reverse pass per parameter, in
#: Python) is not timed: at D = 1024 one call takes minutes.
AUTOGRAD_LIMIT = 1024


def _framework_hessians(loss, names: tuple[str, ...], data: dict) -> list[Contender]:
    """JAX ``jit(hessian)``, ``torch.func.hessian``, autograd ``hessian``, PyTensor
    ``hessian`` of ``loss(np_, param, *data)`` with respect to its first argument."""
    args = ", ".join(names)
    size = data[names[0]].size
    out = []
    jax = frameworks.load_jax()
    name = "JAX `jit(hessian)`, CPU"
    if isinstance(jax, str):
        out.append(Contender(name, missing=jax))
    else:
        import jax.numpy as jnp

        hess = jax.jit(jax.hessian(lambda *a: loss(jnp, *a)))
        shared = frameworks.shared_arrays({k: data[k] for k in names})
        frameworks.block(hess(*(shared[f"j{k}"] for k in names)))  # compiled before timing
        jargs = ", ".join(f"j{k}" for k in names)
        out.append(
            Contender(
                name,
                f"block(hessian({jargs}))",
                {"hessian": hess, "block": frameworks.block},
                note=f"jax {version('jax')}, float64; compiled before timing",
            )
        )
    torch = frameworks.load_torch()
    name = "PyTorch `torch.func.hessian`"
    if isinstance(torch, str):
        out.append(Contender(name, missing=torch))
    else:
        import torch.func

        targs = ", ".join(f"t{k}" for k in names)
        out.append(
            Contender(
                name,
                f"hessian({targs})",
                {"hessian": torch.func.hessian(lambda *a: loss(torch, *a))},
                note=f"torch {version('torch')}, 1 thread; jacfwd(jacrev)",
            )
        )
    loaded = frameworks.load_autograd()
    name = "autograd `hessian`"
    if isinstance(loaded, str):
        out.append(Contender(name, missing=loaded))
    elif size >= AUTOGRAD_LIMIT and loss is _logistic_loss:
        why = f"not run: minutes per call at D = {size} (one reverse pass per parameter)"
        out.append(Contender(name, missing=why))
    else:
        autograd, anp = loaded
        out.append(
            Contender(
                name,
                f"hessian({args})",
                {"hessian": autograd.hessian(lambda *a: loss(anp, *a))},
                note=f"autograd {version('autograd')}",
            )
        )
    out.append(_pytensor_second(loss, names, data, None))
    return out


def _framework_hvps(loss, names: tuple[str, ...], direction: str, data: dict) -> list[Contender]:
    """JAX ``jit(jvp(grad))``, ``torch.func.jvp(grad)``, autograd
    ``hessian_vector_product``, PyTensor ``hessian_vector_product``."""
    args = ", ".join(names)
    out = []
    jax = frameworks.load_jax()
    name = "JAX `jit(jvp(grad))`, CPU"
    if isinstance(jax, str):
        out.append(Contender(name, missing=jax))
    else:
        import jax.numpy as jnp

        grad = jax.grad(lambda *a: loss(jnp, *a))

        def hvp(v, first, *rest):
            return jax.jvp(lambda p: grad(p, *rest), (first,), (v,))[1]

        hvp = jax.jit(hvp)
        shared = frameworks.shared_arrays({k: data[k] for k in (direction, *names)})
        frameworks.block(hvp(*(shared[f"j{k}"] for k in (direction, *names))))
        jargs = ", ".join(f"j{k}" for k in (direction, *names))
        out.append(
            Contender(
                name,
                f"block(hvp({jargs}))",
                {"hvp": hvp, "block": frameworks.block},
                note=f"jax {version('jax')}, float64; forward over reverse, compiled before timing",
            )
        )
    torch = frameworks.load_torch()
    name = "PyTorch `torch.func.jvp(grad)`"
    if isinstance(torch, str):
        out.append(Contender(name, missing=torch))
    else:
        import torch.func

        grad = torch.func.grad(lambda *a: loss(torch, *a))

        def torch_hvp(v, first, *rest):
            return torch.func.jvp(lambda p: grad(p, *rest), (first,), (v,))[1]

        targs = ", ".join(f"t{k}" for k in (direction, *names))
        out.append(
            Contender(
                name,
                f"hvp({targs})",
                {"hvp": torch_hvp},
                note=f"torch {version('torch')}, 1 thread; forward over reverse",
            )
        )
    loaded = frameworks.load_autograd()
    name = "autograd `hessian_vector_product`"
    if isinstance(loaded, str):
        out.append(Contender(name, missing=loaded))
    else:
        autograd, anp = loaded
        out.append(
            Contender(
                name,
                f"hvp({args}, {direction})",
                {
                    "hvp": lambda first, *rest: autograd.hessian_vector_product(
                        lambda p: loss(anp, p, *rest[:-1])
                    )(first, rest[-1])
                },
                note=f"autograd {version('autograd')}",
            )
        )
    out.append(_pytensor_second(loss, names, data, direction))
    return out


def _pytensor_second(loss, names, data, direction) -> Contender:
    """PyTensor's ``hessian`` (or, with a ``direction``, ``hessian_vector_product``)."""
    name = "PyTensor `hessian`" if direction is None else "PyTensor `hessian_vector_product`"
    pytensor = frameworks.load_pytensor()
    if isinstance(pytensor, str):
        return Contender(name, missing=pytensor)
    import pytensor.gradient
    import pytensor.tensor as pt

    def variable(key):
        value = data[key]
        return pt.dvector(key) if value.ndim == 1 else pt.dmatrix(key)

    inputs = [variable(k) for k in names]
    cost = loss(pt, *inputs)
    if direction is None:
        out = pytensor.gradient.hessian(cost, inputs[0])
    else:
        inputs.append(variable(direction))
        out = pytensor.gradient.hessian_vector_product(cost, [inputs[0]], [inputs[-1]])[0]
    built = frameworks.pytensor_function(inputs, out, None)
    if isinstance(built, str):
        return Contender(name, missing=built)
    fn, note = built
    call = ", ".join((*names, *((direction,) if direction else ())))
    return Contender(name, f"second({call})", {"second": fn}, note=note)


# -- workloads ------------------------------------------------------------------------------


def as_array(value) -> np.ndarray:
    """A contender's result as a 2-D float64 NumPy array (JAX, PyTorch and 4-index Hessians
    of a column included)."""
    array = np.array(value, dtype=np.float64)
    side = int(round(np.sqrt(array.size)))
    return array.reshape(side, side) if array.ndim != 2 else array


def check(contenders: list[Contender], symgen_name: str, where: str, rtol: float = RTOL) -> None:
    expected = next(c for c in contenders if c.name == symgen_name)
    check_arrays(expected, contenders, as_array, where=where, rtol=rtol)


def title(key: str) -> str:
    if key.startswith("hessian-logistic-"):
        d = int(key.rpartition("-")[2])
        return f"Hessian — logistic regression, N = {10 * d:,}, D = {d}"
    if key.startswith("hessian-quadratic-"):
        return f"Hessian — x.T A x, D = {key.rpartition('-')[2]}"
    if key == "hvp-factorization":
        m, n, r = FACTORIZATION
        return f"hvp — matrix factorization, T {m} x {n}, rank {r}"
    what = "W3 seed" if key == "hvp-w3-seed" else "W3 large" if key == "hvp-w3-large" else ""
    if key.startswith("hvp-w4-"):
        what = f"W4, N = {int(key.rpartition('-')[2]):,}"
    return f"hvp — against loss_and_grad, {what}"


def description(key: str) -> str:
    if key.startswith("hessian-logistic-"):
        return (
            "The dense Hessian of `examples/logistic.py`'s loss with respect to w, at w of "
            "standard deviation 1/sqrt(D) (z = X w about 1), 0/1 targets, float64; "
            "matrixcalculus.org/GENO's benchmark. Targets: symgen at most 1.05x the "
            f"reference at every D, ahead of it at D >= 256. Reference: {REFERENCE}."
        )
    if key.startswith("hessian-quadratic-"):
        return f"The Hessian of x.T A x (A not symmetric), float64. Reference: {REFERENCE}."
    if key == "hvp-factorization":
        return (
            "H dU for GENO's matrix factorization sum((Omega ⊙ (T - U V.T))**2) with "
            "respect to U (Omega a 0/1 mask, 30% ones), float64. Reference: "
            f"{REFERENCE}."
        )
    return (
        "symgen's `hvp` (H v, v one random direction per parameter) against its own "
        "`loss_and_grad` on the same arguments: the issue's bound is 2.5x. Reference: "
        f"{LOSS_AND_GRAD}."
    )


def build(key: str):
    """(contenders, reference, symgen, other symgen rows, check) of workload ``key``."""
    if key.startswith("hessian-logistic-"):
        d = int(key.rpartition("-")[2])
        contenders = logistic_contenders(d)
        return (
            contenders,
            REFERENCE,
            SYMGEN,
            ((SYMGEN_C, "C backend"),),
            lambda: check(contenders, SYMGEN, f"D = {d}"),
        )
    if key.startswith("hessian-quadratic-"):
        d = int(key.rpartition("-")[2])
        contenders = quadratic_contenders(d)
        return (
            contenders,
            REFERENCE,
            SYMGEN,
            ((SYMGEN_C, "C backend"),),
            lambda: check(contenders, SYMGEN, f"D = {d}"),
        )
    if key == "hvp-factorization":
        contenders = factorization_contenders()
        return (
            contenders,
            REFERENCE,
            SYMGEN_HVP,
            ((SYMGEN_HVP_C, "C backend"),),
            lambda: check(contenders, SYMGEN_HVP, "random U, V, T, dU"),
        )
    if key.startswith("hvp-"):
        contenders, _ = hvp_against_gradient(key.removeprefix("hvp-"))
        return contenders, LOSS_AND_GRAD, SYMGEN_HVP, ((SYMGEN_HVP_C, "C backend"),), lambda: None
    raise ValueError(f"unknown workload {key!r}")
