"""Meshes and logical-axis rules: the one place where model dimensions meet mesh axes.

Every parameter carries logical axis names (``logical_axes`` metadata on its ``nnx.Param``); activations are
constrained with the same names. ``LOGICAL_RULES`` maps names to mesh axes of a ``Mesh(('data', 'fsdp', 'tensor'))``:
FSDP shards parameters' embedding dimension over 'fsdp', tensor parallelism shards heads / MLP / vocab over 'tensor',
and the batch is split over both data axes. A dimension that a mesh axis does not divide is replicated instead (e.g.
2 KV heads on a tensor axis of 4), so one model runs unchanged on 1 CPU, 8 fake CPU devices or a TPU pod.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

LOGICAL_RULES: dict[str, tuple[str, ...] | None] = {
    "batch": BATCH_AXES,
    "embed": ("fsdp",),  # parameters' model dimension (FSDP)
    "vocab": ("tensor",),
    "heads": ("tensor",),
    "kv_heads": ("tensor",),
    "mlp": ("tensor",),
    "head_dim": None,
    "norm": None,
    "seq": None,
    "act_embed": None,  # activations' model dimension stays whole
}


def make_mesh(data: int | None = None, fsdp: int = 1, tensor: int = 1,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A (data, fsdp, tensor) mesh with Auto axis types; ``data=None`` takes every remaining device."""
    devices = list(devices if devices is not None else jax.devices())
    if data is None:
        if len(devices) % (fsdp * tensor):
            raise ValueError(f"{len(devices)} devices do not split into fsdp={fsdp} x tensor={tensor}")
        data = len(devices) // (fsdp * tensor)
    count = data * fsdp * tensor
    if count > len(devices):
        raise ValueError(f"mesh ({data}, {fsdp}, {tensor}) needs {count} devices; {len(devices)} available")
    return jax.make_mesh((data, fsdp, tensor), MESH_AXES, axis_types=(AxisType.Auto,) * 3,
                         devices=devices[:count])


def logical_to_spec(names: Sequence[str | None], shape: Sequence[int] | None = None,
                    mesh: Mesh | None = None) -> PartitionSpec:
    """PartitionSpec for logical axis names; axes that would not divide ``shape`` evenly are dropped."""
    spec = []
    used: set[str] = set()
    for i, name in enumerate(names):
        axes = LOGICAL_RULES.get(name) if name is not None else None
        if axes is None:
            spec.append(None)
            continue
        keep = []
        for axis in axes:
            if axis in used:
                continue
            size = mesh.shape[axis] if mesh is not None else 1
            current = int(np.prod([mesh.shape[a] for a in keep])) if mesh is not None else 1
            if shape is not None and mesh is not None and shape[i] % (current * size):
                continue
            keep.append(axis)
        used.update(keep)
        spec.append(tuple(keep) if len(keep) > 1 else (keep[0] if keep else None))
    return PartitionSpec(*spec)


def logical_sharding(mesh: Mesh, names: Sequence[str | None], shape: Sequence[int]) -> NamedSharding:
    return NamedSharding(mesh, logical_to_spec(names, shape, mesh))


def _is_variable(x: object) -> bool:
    return isinstance(x, nnx.Variable)


def state_shardings(state: nnx.State, mesh: Mesh) -> nnx.State:
    """A tree (prefix of ``state``) of NamedShardings from each variable's ``logical_axes`` metadata."""

    def one(variable: nnx.Variable) -> NamedSharding:
        value = variable.get_value() if hasattr(variable, "get_value") else variable.value
        names = variable.get_metadata().get("logical_axes")
        if names is None or np.ndim(value) == 0:
            return NamedSharding(mesh, PartitionSpec())
        return logical_sharding(mesh, names, np.shape(value))

    return jax.tree.map(one, state, is_leaf=_is_variable)


def shard_state(state: nnx.State, mesh: Mesh) -> nnx.State:
    """Place every variable of ``state`` on ``mesh`` according to its logical axes."""
    return jax.device_put(state, state_shardings(state, mesh))


def batch_shard_count(mesh: Mesh | None) -> int:
    """How many pieces the batch (leading) dimension is split into: the product of the mesh's batch axes that
    exist, 1 without a mesh."""
    if mesh is None:
        return 1
    return int(np.prod([mesh.shape[axis] for axis in BATCH_AXES if axis in mesh.shape]))


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    """Leading (batch) dimension over the data axes, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES, *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def global_array(value, sharding: NamedSharding) -> jax.Array:
    """``jax.device_put(value, sharding)`` that also works when the mesh spans several processes.

    ``value`` (a host array or a PRNG key) must be identical on every process; each process fills its own devices'
    shards (``jax.make_array_from_callback``).
    """
    if jax.process_count() == 1:
        return jax.device_put(value, sharding)
    if isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        data = global_array(np.asarray(jax.random.key_data(value)), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(value))
    host = np.asarray(value)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def host_value(x) -> np.ndarray:
    """The full value of a (possibly multi-process, sharded) array on every process, as NumPy."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
    """Constrain an activation's sharding by logical names under the current mesh (no-op without one)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh is None or mesh.empty:
        return x
    return jax.lax.with_sharding_constraint(x, logical_to_spec(names, x.shape, mesh))
