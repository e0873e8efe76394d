"""``symgen.fit``: a training loop over a generated module's step functions.

This is symgen's runtime, not generated code: it drives ``sgd_step``,
``momentum_step`` or ``adam_step`` of any generated module (from
``symgen.compile`` or a file under ``generated/``), cuts the data into shuffled
mini-batches when asked, records the loss and wall time of every step, shows
progress, and stops on a step budget, a tolerance, a callback or a non-finite
loss or parameter (keeping the last finite parameters).

It runs generated NumPy modules and generated CUDA (CuPy) modules alike: the
array library is the module's own (``cp`` for a CUDA module, else NumPy), so the
parameters, the data, the mini-batches and the checks of a CUDA module's fit stay
on the device. CuPy is never imported here.

Modules, from the top: ``fitting`` (``fit``: resolve, set up, loop, result),
``settings`` (the arguments checked), ``loop`` (the steps), ``stopping``,
``nonfinite``, ``progress``, ``dask_steps`` (steps on Dask arrays), ``optimizers``
(the module's step function), ``batches``, ``inputs`` (initial parameters and
data), ``modules`` (what a generated module offers), ``arrays`` (NumPy or CuPy),
``result`` (``FitResult``, ``NonFiniteError``).
"""
