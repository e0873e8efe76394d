"""SciPy's solvers on a generated module (``symgen.minimize``, ``symgen.least_squares``):
parameters packed into SciPy's flat vector and back by name and shape (``layout``), the
loss and gradient from ``loss_and_grad``, the Hessian from ``hessian``/``hvp``, the
residuals and Jacobian of a least-squares loss from ``residuals``/``jacobian``. SciPy is an
optional dependency (``pip install 'symgen[scipy]'``), imported on the first call
(``optional``); generated modules never import it."""
