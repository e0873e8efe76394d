"""``symgen.distributed``: losses and gradients over Dask arrays split by rows.

The public name of :mod:`symgen.runtime.distributed`, where it is documented.
"""

from symgen.runtime.distributed import connect, loss, loss_and_grad

__all__ = ["connect", "loss", "loss_and_grad"]
