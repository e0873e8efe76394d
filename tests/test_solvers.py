"""symgen.minimize and symgen.least_squares: SciPy's solvers on generated modules reach the
known optima of W1 (Rosenbrock), W2 (logistic regression) and W4 (the curve fit); parameters
go in and come back by name and shape; the errors say what is missing."""

import types

import numpy as np
import pytest
import sympy as sp

import symgen
from examples import curve_fit, logistic, rosenbrock

M, D = sp.symbols("M D", integer=True, positive=True)
X, y, w = sp.MatrixSymbol("X", M, D), sp.MatrixSymbol("y", M, 1), sp.MatrixSymbol("w", D, 1)
b = sp.Symbol("b")
LINEAR = symgen.Problem(
    symgen.sum(symgen.elementwise(lambda z, t: (z + b - t) ** 2, X * w, y)) / 2,
    params=[w, b],
    data=[X, y],
    name="linear",
)


def with_second_order(module):
    """``module`` with ``hvp`` and ``hessian`` made here, for this test only, from central
    differences of its generated gradient (modules will generate their own); data by name,
    as the solvers pass them."""

    def flat_grad(values, data):
        return np.concatenate([np.ravel(g) for g in module.grad(*values, **data)])

    def split(values, flat):
        out, at = [], 0
        for v in values:
            size = np.size(v)
            piece = flat[at : at + size]
            out.append(piece.reshape(np.shape(v)) if np.ndim(v) else float(piece[0]))
            at += size
        return out

    def hvp(*values, v, **data):
        x = np.concatenate([np.ravel(p) for p in values])
        u = np.concatenate([np.ravel(p) for p in v])
        h = 1e-5 / max(1.0, np.linalg.norm(u))
        plus = flat_grad(split(values, x + h * u), data)
        minus = flat_grad(split(values, x - h * u), data)
        return tuple(split(values, (plus - minus) / (2 * h)))

    def hessian(*values, **data):
        size = sum(np.size(v) for v in values)
        columns = []
        for k in range(size):
            e = np.zeros(size)
            e[k] = 1.0
            product = hvp(*values, v=split(values, e), **data)
            columns.append(np.concatenate([np.ravel(p) for p in product]))
        h = np.array(columns)
        return (h + h.T) / 2

    names = ("PARAMS", "DATA", "DTYPE", "loss", "loss_and_grad", "grad")
    return types.SimpleNamespace(**{n: getattr(module, n) for n in names}, hvp=hvp, hessian=hessian)


@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "CG"])
def test_rosenbrock_first_order(method):
    module = symgen.compile(rosenbrock.rosenbrock)
    result = symgen.minimize(module, (-1.2, 1.0), method=method, tol=1e-12)
    assert result.success
    assert isinstance(result.params, tuple) and all(isinstance(p, float) for p in result.params)
    np.testing.assert_allclose(result.params, (1.0, 1.0), atol=1e-5)
    assert result.loss == pytest.approx(module.loss(*result.params), rel=1e-12)


@pytest.mark.parametrize("method", ["trust-exact", "trust-ncg", "trust-krylov", "Newton-CG"])
def test_rosenbrock_second_order(method):
    module = with_second_order(symgen.compile(rosenbrock.rosenbrock))
    result = symgen.minimize(module, {"x": -1.2, "y": 1.0}, method=method, tol=1e-8)
    assert result.success, result.message
    assert set(result.params) == {"x", "y"}
    np.testing.assert_allclose([result.params["x"], result.params["y"]], (1.0, 1.0), atol=1e-5)


# trust-krylov's own subproblem solver multiplies by inf once its radius is ~0 at gtol 1e-12
# (SciPy's rosen/rosen_der/rosen_hess warn the same): not the module's doing
@pytest.mark.filterwarnings("ignore:invalid value encountered in multiply:RuntimeWarning")
def test_second_order_methods_use_the_modules_hessian():
    module = symgen.compile(rosenbrock.rosenbrock)
    for method in ("trust-exact", "Newton-CG", "trust-ncg", "trust-krylov"):
        tight = {"xtol": 1e-12} if method == "Newton-CG" else {"gtol": 1e-12}
        result = symgen.minimize(module, (-1.2, 1.0), method=method, options=tight)
        np.testing.assert_allclose(result.params, (1.0, 1.0), atol=1e-6, err_msg=method)


def test_second_order_methods_need_the_modules_hessian():
    module = symgen.compile(rosenbrock.rosenbrock)
    names = [n for n in dir(module) if not n.startswith("__") and n not in ("hessian", "hvp")]
    older = types.SimpleNamespace(**{n: getattr(module, n) for n in names})  # no hessian, hvp
    for method, function in (("trust-exact", "hessian()"), ("Newton-CG", "hvp()")):
        with pytest.raises(TypeError, match=f"method '{method}' needs the Hessian.*no {function}"):
            symgen.minimize(older, (2.0, 2.0), method=method)


def test_method_none_is_scipys_own_choice():
    """SciPy picks BFGS, or L-BFGS-B when there are bounds; neither uses the Hessian."""
    module = symgen.compile(rosenbrock.rosenbrock)
    for options, picked in (({}, "BFGS"), ({"bounds": [(-2, 2), (-2, 2)]}, "L-BFGS-B")):
        chosen = symgen.minimize(module, (-1.2, 1.0), method=None, **options)
        named = symgen.minimize(module, (-1.2, 1.0), method=picked, **options)
        assert chosen.success and (chosen.nit, chosen.params) == (named.nit, named.params)


def test_a_callable_method_is_a_custom_minimizer():
    """A custom method gets what SciPy gives one from jac=True (fun for the loss, jac for the
    gradient) and the module's Hessian both ways, hess and hessp."""
    from scipy.optimize import OptimizeResult

    module = symgen.compile(rosenbrock.rosenbrock)

    def newton(fun, x0, jac, hess, hessp, **_):
        x = x0.copy()
        for _ in range(20):
            np.testing.assert_allclose(hessp(x, x), hess(x) @ x, rtol=1e-12)
            x = x - np.linalg.solve(hess(x), jac(x))
        return OptimizeResult(x=x, fun=fun(x), success=True, nit=20)

    result = symgen.minimize(module, (-1.2, 1.0), method=newton)
    assert result.success and result.nit == 20
    np.testing.assert_allclose(result.params, (1.0, 1.0), rtol=1e-12)
    assert result.loss == pytest.approx(0.0, abs=1e-20)


@pytest.mark.parametrize("method", [3, b"BFGS", ("BFGS",)])
def test_a_method_that_is_no_name_nor_callable_is_a_type_error(method):
    module = symgen.compile(rosenbrock.rosenbrock)
    with pytest.raises(TypeError, match="method must be the name of one of SciPy's methods"):
        symgen.minimize(module, (-1.2, 1.0), method=method)


def _newton_reference(x, t, steps=50):
    """The maximum-likelihood w by Newton's method, written out here (w = 0 start)."""
    weights = np.zeros((x.shape[1], 1))
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ weights))
        hessian = x.T @ (p * (1 - p) * x)
        weights -= np.linalg.solve(hessian, x.T @ (p - t))
    return weights


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_logistic_reaches_the_maximum_likelihood(backend):
    module = symgen.compile(logistic.logistic, backend)
    x, t = logistic.large(n=3000, d=5, seed=3)
    expected = _newton_reference(x, t)
    result = symgen.minimize(
        module, np.zeros((5, 1)), {"X": x, "t": t}, options={"gtol": 1e-10, "ftol": 0}
    )
    (weights,) = result.params
    assert weights.shape == (5, 1) and weights.dtype == np.float64
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    assert np.abs(module.grad(weights, x, t)[0]).max() < 1e-6


def test_callback_and_result_parameters_have_memory_of_their_own():
    """L-BFGS-B writes every iterate into one array (the callback's ``x``): the parameters a
    callback finds, and the result's, are copies, so a recorded history keeps each point."""
    module = symgen.compile(logistic.logistic)
    x, t = logistic.large(n=200, d=3, seed=1)
    history = []

    def callback(intermediate_result):  # the point now, and the parameters SciPy's x holds
        history.append((intermediate_result.params[0], intermediate_result.x.copy()))

    result = symgen.minimize(module, np.zeros((3, 1)), (x, t), callback=callback)
    assert len(history) > 2
    for weights, point in history:
        np.testing.assert_array_equal(weights.ravel(), point)
    assert not np.shares_memory(result.params[0], result.x)
    np.testing.assert_array_equal(result.params[0].ravel(), result.x)


def test_tncs_callback_finds_the_parameters_too():
    """SciPy calls TNC's callback with the point alone; it gets an intermediate result."""
    module = symgen.compile(rosenbrock.rosenbrock)
    seen = []
    result = symgen.minimize(
        module, {"x": -1.2, "y": 1.0}, method="TNC", callback=lambda r: seen.append(r)
    )
    assert len(seen) > 2 and all(r.params == {"x": r.x[0], "y": r.x[1]} for r in seen)
    assert result.params == {"x": result.x[0], "y": result.x[1]}


def test_least_squares_result_parameters_have_memory_of_their_own():
    module = symgen.compile(LINEAR)
    x = np.random.default_rng(4).standard_normal((30, 4))
    for method in ("lm", "trf"):
        result = symgen.least_squares(
            module, {"w": np.zeros((4, 1)), "b": 0.0}, {"X": x, "y": x @ np.ones((4, 1))},
            method=method,
        )  # fmt: skip
        assert not np.shares_memory(result.params["w"], result.x)
        np.testing.assert_array_equal(result.params["w"].ravel(), result.x[:4])


def test_logistic_tiny_separable_data_goes_to_zero_loss():
    """W2's tiny data are separable: the likelihood has no finite maximum, the loss tends to 0
    along a direction that classifies every sample."""
    module = symgen.compile(logistic.logistic)
    x, t = np.array(logistic.TINY_X), np.array(logistic.TINY_T)
    start = module.loss(np.zeros((3, 1)), x, t)
    assert start == pytest.approx(2.77258872224, rel=1e-11)
    result = symgen.minimize(module, {"w": np.zeros((3, 1))}, (x, t))
    assert result.loss < 1e-4
    assert np.all((x @ result.params["w"] > 0) == (t == 1))


@pytest.mark.parametrize("backend", ["numpy", "c"])
@pytest.mark.parametrize("method", ["lm", "trf"])
def test_curve_fit_least_squares(backend, method):
    module = symgen.compile(curve_fit.curve_fit, backend)
    ts, ys = curve_fit.synthetic(20_000, seed=1)
    result = symgen.least_squares(module, curve_fit.START, {"t": ts, "y": ys}, method=method)
    assert result.success
    np.testing.assert_allclose(result.params, curve_fit.TRUE, atol=2e-3)
    # the optimum: the gradient of the loss vanishes there
    assert np.abs(module.grad(*result.params, ts, ys)).max() < 1e-9
    assert result.loss == pytest.approx(module.loss(*result.params, ts, ys), rel=1e-12)
    assert result.nfev < 30  # against 3000 Adam steps
    # the same optimum by L-BFGS-B on the loss and gradient
    other = symgen.minimize(
        module, curve_fit.START, {"t": ts, "y": ys}, options={"gtol": 1e-12, "ftol": 0}
    )
    np.testing.assert_allclose(other.params, result.params, rtol=1e-5)


@pytest.mark.parametrize("backend", ["numpy", "c"])
@pytest.mark.parametrize("method", ["lm", "trf"])
def test_least_squares_takes_residuals_from_the_jacobians_pass(backend, method):
    """After the first point, SciPy's residuals come from ``jacobian(..., residuals=r)``, and
    its Jacobian at that point is the one that pass made: one pass per point, and the same
    fit as with residuals() and jacobian() called apart."""
    from scipy.optimize import least_squares as scipy_least_squares

    module = symgen.compile(curve_fit.curve_fit, backend)
    ts, ys = curve_fit.synthetic(5000, seed=2)
    passes = []

    def residuals(*args, **data):
        passes.append("residuals")
        return module.residuals(*args, **data)

    def jacobian(*args, residuals=None, **data):
        passes.append("jacobian" if residuals is None else "both")
        if residuals is None:
            return module.jacobian(*args, **data)
        return module.jacobian(*args, **data, residuals=residuals)

    counting = types.SimpleNamespace(**vars(module))
    counting.residuals, counting.jacobian = residuals, jacobian
    result = symgen.least_squares(counting, curve_fit.START, {"t": ts, "y": ys}, method=method)
    # one pass per point: the residuals alone at x0 (their shape), its Jacobian, and both at
    # once at every further point; nothing more at the solution
    assert passes == ["residuals", "jacobian"] + ["both"] * (result.nfev - 1)
    assert len(passes) < result.nfev + result.njev  # SciPy asked for more than it cost

    def fun(p):
        return module.residuals(*p, ts, ys)

    def jac(p):
        return module.jacobian(*p, ts, ys)

    apart = scipy_least_squares(fun, np.array(curve_fit.START), jac=jac, method=method)
    np.testing.assert_allclose(result.params, apart.x, rtol=1e-10)
    assert result.nfev == apart.nfev
    # least_squares's result, field by field (method "lm" runs MINPACK through leastsq)
    assert (result.njev, result.status, result.success) == (apart.njev, apart.status, True)
    assert result.cost == pytest.approx(apart.cost, rel=1e-12)
    np.testing.assert_allclose(result.fun, apart.fun, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(result.jac, apart.jac, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(result.grad, apart.grad, atol=1e-9)
    assert result.optimality == pytest.approx(np.abs(result.grad).max())
    np.testing.assert_array_equal(result.active_mask, apart.active_mask)
    assert result.jac.shape == (ts.size, 6) and result.x.dtype == np.float64


@pytest.mark.parametrize(
    "options",
    [{"x_scale": 1.0}, {"loss": "linear"}, {"max_nfev": 400, "ftol": 1e-12}, {"verbose": 0}],
)
def test_least_squares_lm_with_any_scipy_option(options):
    """Method "lm" with options beyond the tolerances, max_nfev and x_scale="jac" is
    scipy.optimize.least_squares's; the fit is the same."""
    module = symgen.compile(curve_fit.curve_fit)
    ts, ys = curve_fit.synthetic(2000, seed=3)
    result = symgen.least_squares(module, curve_fit.START, {"t": ts, "y": ys}, **options)
    assert result.success and result.status > 0
    plain = symgen.least_squares(module, curve_fit.START, {"t": ts, "y": ys})
    np.testing.assert_allclose(result.params, plain.params, rtol=1e-6)


@pytest.mark.parametrize("scales", [np.ones(6), np.array([1.0, 3.0, 0.5, 0.1, 0.3, 1.0])])
def test_least_squares_lm_with_an_array_of_scales(scales):
    """x_scale as an array (one scale per parameter element) is least_squares's, as SciPy
    runs it with those scales."""
    from scipy.optimize import least_squares as scipy_least_squares

    module = symgen.compile(curve_fit.curve_fit)
    ts, ys = curve_fit.synthetic(2000)
    result = symgen.least_squares(module, curve_fit.START, {"t": ts, "y": ys}, x_scale=scales)
    apart = scipy_least_squares(
        lambda p: module.residuals(*p, ts, ys),
        np.array(curve_fit.START),
        jac=lambda p: module.jacobian(*p, ts, ys),
        method="lm",
        x_scale=scales,
    )
    assert result.success and (result.status, result.nfev) == (apart.status, apart.nfev)
    np.testing.assert_allclose(result.x, apart.x, rtol=1e-10)


@pytest.mark.filterwarnings("ignore:Setting `ftol` below the machine epsilon")
@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"ftol": 1e-20}, "machine epsilon"),
        ({"xtol": None}, "machine epsilon"),
        ({"max_nfev": 0}, "max_nfev"),
        ({"bounds": (0, 1)}, "bounds"),
    ],
)
def test_least_squares_lm_refuses_what_scipy_refuses(options, match):
    module = symgen.compile(curve_fit.curve_fit)
    ts, ys = curve_fit.synthetic(100, seed=4)
    with pytest.raises(ValueError, match=match):
        symgen.least_squares(module, curve_fit.START, {"t": ts, "y": ys}, **options)


def test_least_squares_lm_out_of_evaluations_is_status_0():
    """max_nfev reached: least_squares's status 0, no success, the latest best point."""
    from scipy.optimize import least_squares as scipy_least_squares

    module = symgen.compile(curve_fit.curve_fit)
    ts, ys = curve_fit.synthetic(500, seed=5)
    result = symgen.least_squares(module, curve_fit.START, {"t": ts, "y": ys}, max_nfev=3)
    apart = scipy_least_squares(
        lambda p: module.residuals(*p, ts, ys),
        np.array(curve_fit.START),
        jac=lambda p: module.jacobian(*p, ts, ys),
        method="lm",
        max_nfev=3,
    )
    assert (result.status, result.success, result.nfev) == (0, False, apart.nfev)
    np.testing.assert_allclose(result.x, apart.x, rtol=1e-10)
    assert result.loss == pytest.approx(module.loss(*result.params, ts, ys), rel=1e-12)


def test_least_squares_lm_needs_as_many_residuals_as_parameters():
    module = symgen.compile(curve_fit.curve_fit)
    ts, ys = curve_fit.synthetic(4, seed=4)
    with pytest.raises(ValueError, match="number of residuals is less than"):
        symgen.least_squares(module, curve_fit.START, {"t": ts, "y": ys})


def test_linear_least_squares_solution():
    """Residuals of a matrix loss with a vector and a scalar parameter: the normal equations."""
    module = symgen.compile(LINEAR)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((200, 4))
    t = x @ rng.standard_normal((4, 1)) + 0.3 + 0.1 * rng.standard_normal((200, 1))
    result = symgen.least_squares(module, {"w": np.zeros((4, 1)), "b": 0.0}, {"X": x, "y": t})
    design = np.column_stack((x, np.ones(200)))
    expected = np.linalg.lstsq(design, t[:, 0], rcond=None)[0]
    np.testing.assert_allclose(result.params["w"].ravel(), expected[:4], rtol=1e-10)
    assert result.params["b"] == pytest.approx(expected[4], rel=1e-10)
    assert result.loss == pytest.approx(module.loss(result.params["w"], result.params["b"], x, t))


def test_least_squares_needs_residuals():
    module = symgen.compile(logistic.logistic)
    with pytest.raises(TypeError, match="least_squares needs the module's residuals"):
        symgen.least_squares(module, np.zeros((3, 1)), (np.eye(3), np.ones((3, 1))))


def test_parameters_and_data_are_checked_by_name():
    module = symgen.compile(curve_fit.curve_fit)
    ts, ys = curve_fit.synthetic(100)
    with pytest.raises(ValueError, match="no value for 'g'"):
        symgen.minimize(module, dict(zip("abcde", curve_fit.START, strict=False)), (ts, ys))
    with pytest.raises(ValueError, match="x0 has 2 values; the module takes 6"):
        symgen.minimize(module, (1.0, 2.0), (ts, ys))
    with pytest.raises(ValueError, match="unknown name"):
        symgen.least_squares(module, curve_fit.START, {"t": ts, "y": ys, "z": ys})
    with pytest.raises(TypeError, match="data 't' must be real numbers"):
        symgen.least_squares(module, curve_fit.START, {"t": ts.astype(complex), "y": ys})


@pytest.mark.parametrize(
    ("solver", "given", "match"),
    [
        ("minimize", {"args": (1,)}, r"minimize makes args= itself.*data= .*order t, y"),
        ("minimize", {"jac": False}, r"makes jac= itself.*call scipy.optimize.minimize yourself"),
        ("minimize", {"hess": None, "hessp": None}, "makes hess=, hessp= itself"),
        ("minimize", {"fun": len}, "makes fun= itself"),
        ("least_squares", {"args": (1,)}, r"least_squares makes args= itself.*data="),
        ("least_squares", {"kwargs": {"t": 1}}, "makes kwargs= itself"),
        ("least_squares", {"jac": "2-point"}, "makes jac= itself"),
    ],
)
def test_what_symgen_makes_from_the_module_and_data_is_refused(solver, given, match):
    module = symgen.compile(curve_fit.curve_fit)
    ts, ys = curve_fit.synthetic(100)
    with pytest.raises(TypeError, match=match):
        getattr(symgen, solver)(module, curve_fit.START, {"t": ts, "y": ys}, **given)


@pytest.mark.parametrize("solver", ["minimize", "least_squares"])
@pytest.mark.parametrize(
    ("start", "match"),
    [
        ({"w": np.zeros((4, 1)), "b": np.nan}, r"x0 'b' is nan; .*give 'b' a finite start"),
        (
            {"w": np.array([[0], [np.inf], [0], [0]]), "b": 0.0},
            r"x0 'w' holds inf at index \(1, 0\)",
        ),
    ],
)
def test_a_start_that_is_not_finite_is_a_value_error_naming_the_parameter(solver, start, match):
    module = symgen.compile(LINEAR)
    x = np.random.default_rng(0).standard_normal((20, 4))
    with pytest.raises(ValueError, match=match):
        getattr(symgen, solver)(module, start, {"X": x, "y": x @ np.ones((4, 1))})


def test_float32_module_solves_in_float64_and_returns_its_dtype():
    single = symgen.Problem(
        LINEAR.loss, LINEAR.params, LINEAR.data, dtype="float32", name="linear32"
    )
    module = symgen.compile(single)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((100, 4)).astype(np.float32)
    t = (x @ np.ones((4, 1)) + 1.0).astype(np.float32)
    result = symgen.least_squares(module, (np.zeros((4, 1), np.float32), 0.0), (x, t))
    assert result.params[0].dtype == np.float32
    np.testing.assert_allclose(result.params[0], np.ones((4, 1)), atol=1e-4)
    assert result.params[1] == pytest.approx(1.0, abs=1e-4)


def test_missing_scipy_is_a_clear_import_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name == "scipy" or name.startswith("scipy."):
            raise ImportError("no scipy here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    module = symgen.compile(rosenbrock.rosenbrock)
    with pytest.raises(ImportError, match=r"pip install 'symgen\[scipy\]'"):
        symgen.minimize(module, (2.0, 2.0))


_a, _c, _s, _t, _y = sp.symbols("a c s t y")
#: A Gaussian likelihood with its scale as a parameter: log(s) is not defined for s <= 0,
#: where the steps of every method below go on the way to the optimum.
GAUSSIAN = symgen.Problem(
    sp.log(_s) + (_y - _a * _t - _c) ** 2 / (2 * _s**2), [_a, _c, _s], [_t, _y], name="gauss"
)


def _gaussian_data():
    rng = np.random.default_rng(7)
    t = rng.uniform(0.1, 2, 50)
    return t, 1.5 * np.exp(-0.7 * t) + 0.01 * rng.normal(size=50)


@pytest.mark.parametrize("backend", ["numpy", "c"])
@pytest.mark.parametrize("method", ["trust-exact", "trust-ncg", "trust-krylov", "Newton-CG"])
def test_a_trial_point_outside_the_domain_is_an_infinite_loss(backend, method):
    """The generated scalar arithmetic raises at log(s) for s < 0 (Python's ``math``); a
    trial point there is an infinite loss to SciPy, which steps back and reaches the
    maximum likelihood: the least-squares line and the residuals' root mean square."""
    module = symgen.compile(GAUSSIAN, backend)
    t, y = _gaussian_data()
    with pytest.raises(ValueError):
        module.loss(1.2, 0.5, -0.8, t, y)  # what SciPy's steps meet
    fit = symgen.minimize(module, (1.2, 0.5, 0.8), (t, y), method=method)
    slope, intercept = np.polyfit(t, y, 1)
    scale = np.sqrt(np.mean((y - slope * t - intercept) ** 2))
    assert fit.success
    np.testing.assert_allclose(fit.params, (slope, intercept, scale), rtol=1e-5)


def test_the_start_outside_the_domain_raises():
    """At x0 an error is the module's own (bad arguments, or a start it cannot evaluate)."""
    module = symgen.compile(GAUSSIAN)
    with pytest.raises(ValueError, match="math domain error"):
        symgen.minimize(module, (1.2, 0.5, -0.8), _gaussian_data(), method="trust-exact")


def test_least_squares_when_a_data_array_is_named_residuals():
    """The keyword is then ``residuals_``, and least_squares calls the functions apart."""
    a, t, residuals = sp.symbols("a t residuals")
    problem = symgen.Problem((a * t - residuals) ** 2, [a], [t, residuals], name="named")
    module = symgen.compile(problem)
    ts = np.linspace(0, 1, 50)
    again = np.empty(50)
    module.jacobian(0.5, ts, 3 * ts, residuals_=again)
    np.testing.assert_allclose(again, module.residuals(0.5, ts, 3 * ts), rtol=1e-14)
    result = symgen.least_squares(module, (0.5,), {"t": ts, "residuals": 3 * ts})
    assert result.params[0] == pytest.approx(3.0, rel=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "c"])
@pytest.mark.parametrize("method", ["lm", "trf", "dogbox"])
def test_least_squares_steps_back_from_outside_the_domain(backend, method):
    """Residuals log(a) + b*t - y: Levenberg-Marquardt's and the trust regions' first steps
    take a below 0, where the module's math.log raises; they are infinite residuals to
    SciPy, which shortens the step and reaches the log-linear fit."""
    a, b, t, y = sp.symbols("a b t y")
    module = symgen.compile(
        symgen.Problem((sp.log(a) + b * t - y) ** 2, [a, b], [t, y], name="loglin"), backend
    )
    rng = np.random.default_rng(1)
    ts = rng.uniform(0, 1, 40)
    ys = np.log(0.05) + 2 * ts + 0.01 * rng.normal(size=40)
    slope, intercept = np.polyfit(ts, ys, 1)
    for start in [(1.0, 0.0), (3.0, 0.0), (0.5, 1.0)]:
        fit = symgen.least_squares(module, start, (ts, ys), method=method)
        assert fit.success
        np.testing.assert_allclose(fit.params, (np.exp(intercept), slope), rtol=1e-6)
    with pytest.raises(ValueError, match="math domain error"):
        symgen.least_squares(module, (-1.0, 0.0), (ts, ys), method=method)
