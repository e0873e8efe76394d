"""``symgen.distributed``: losses and gradients over Dask arrays split by rows.

The public names of :mod:`symgen.runtime.distributed`, where it is documented.
"""

from symgen.runtime.distributed.cluster import connect
from symgen.runtime.distributed.over_rows import loss, loss_and_grad

__all__ = ["connect", "loss", "loss_and_grad"]
