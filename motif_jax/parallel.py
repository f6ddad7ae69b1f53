"""Device mesh helpers shared by the reward trainer and the PPO learner.

One 1-D mesh over every device of every process, axis ``data``: batches are
sharded along it, parameters are replicated. The same code runs on 1 CPU, 8 fake
CPU devices, a GPU node or a multi-host pod.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from motif_jax.errors import MotifError

DATA = "data"


def maybe_initialize_distributed() -> bool:
    """Call ``jax.distributed.initialize()`` when a launcher asked for multi-host.

    Triggered by ``MOTIF_COORDINATOR`` (``host:port``) with ``MOTIF_NUM_PROCESSES`` and
    ``MOTIF_PROCESS_ID``, or by ``MOTIF_DISTRIBUTED=auto`` (SLURM/TPU/cluster autodetection).
    """
    # Must not touch jax.process_count()/devices() first: that would start the backend single-process.
    if jax.distributed.is_initialized():
        return True
    coordinator = os.environ.get("MOTIF_COORDINATOR")
    if coordinator:
        jax.distributed.initialize(
            coordinator_address=coordinator,
            num_processes=int(os.environ["MOTIF_NUM_PROCESSES"]),
            process_id=int(os.environ["MOTIF_PROCESS_ID"]),
        )
    elif os.environ.get("MOTIF_DISTRIBUTED") == "auto":
        jax.distributed.initialize()
    else:
        return False
    return True


def make_mesh(devices=None) -> Mesh:
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA,))


def local_devices_at(indices, role: str) -> list:
    """This process's devices at ``indices`` (positions in ``jax.local_devices()``)."""
    local = jax.local_devices()
    bad = [i for i in indices if not isinstance(i, int) or not 0 <= i < len(local)]
    if bad or not indices:
        raise MotifError(
            f"{role}.devices {list(indices)}: need indices in [0, {len(local)}) of this process's "
            f"devices ({', '.join(str(d) for d in local)})"
        )
    return [local[i] for i in indices]


def role_mesh(indices) -> Mesh:
    """A ``data`` mesh over the devices at local ``indices`` on every process ([] = every device)."""
    if not indices:
        return make_mesh()
    local_devices_at(indices, "learner")  # validates against this process
    by_process: dict[int, list] = {}
    for d in jax.devices():
        by_process.setdefault(d.process_index, []).append(d)
    return make_mesh([sorted(ds, key=lambda d: d.id)[i] for _, ds in sorted(by_process.items()) for i in indices])


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over ``data``; other axes whole."""
    return NamedSharding(mesh, P(DATA))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def local_rows(global_rows: int) -> slice:
    """The rows of a global batch this process provides (contiguous, equal shares)."""
    n, i = jax.process_count(), jax.process_index()
    if global_rows % n:
        raise ValueError(f"global batch {global_rows} not divisible by {n} processes")
    share = global_rows // n
    return slice(i * share, (i + 1) * share)


def shard_batch(local_tree, mesh: Mesh):
    """Assemble a global ``jax.Array`` batch from this process's rows (numpy), sharded along ``data``."""
    sharding = data_sharding(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_tree)


def replicate(tree, mesh: Mesh):
    sharding = replicated(mesh)
    return jax.tree.map(lambda x: jax.device_put(x, sharding), tree)
