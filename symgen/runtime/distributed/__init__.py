"""``symgen.distributed``: losses and gradients over data that does not fit one machine,
Dask arrays split by rows.

``loss_and_grad(module_or_problem, params, data)`` takes ``data`` as
``dask.array`` arrays chunked along their first axis (the samples of a
per-sample problem, the rows of a matrix problem's data), calls the generated
module's own ``loss_and_grad`` on each chunk of rows where the chunk lives,
and adds the parts up in a tree: a sum over rows adds, a mean weighs each
chunk by its share of the rows. It returns what the module's ``loss_and_grad``
returns on all the rows at once, up to rounding.

That is right only for losses that split over rows (``symgen.separable``):
a ``Problem`` is checked structurally; a bare module is checked on a few of the
data's own rows (the loss on all of them against its parts, and on the rows
repeated twice). A loss that does not split (``logsumexp`` across rows, a
parameter sized by the row count, ``log`` of a sum over rows) is a
``SpecError`` saying why.

The work runs wherever ``dask.compute`` runs it: on the ``dask.distributed``
``Client`` that is active (a ``LocalCluster`` on one machine, or a cluster),
else on Dask's local threads. Workers need ``numpy`` and ``symgen``
installed; the generated module's source travels with the task graph, once
per computation. Install with ``pip install 'symgen[dask]'``.

Modules, from the top: ``over_rows`` (``loss``, ``loss_and_grad``), ``row_plan``
(``RowPlan``: the data checked and aligned, then one pass per call), ``graph`` (the task
graph of a pass: a task per chunk, then a tree of sums), ``chunk_batches`` (mini-batches
read chunk by chunk), ``alignment`` (row chunks made the same for every array), ``probe``
(whether a bare module's loss splits over rows), ``sources`` (a module's source, to ship),
``workers`` (what runs on the workers), ``loading`` (a module from its source), ``cluster``
(Dask, and ``connect``).
"""
