"""Multi-host hand-off: the buffer lives on process 0; its selection reaches every process.

Each process builds its share of the batch from the same ``Selection``. Process 0 encodes the
selection (instances, sources, modes, entry ids) as JSON bytes and ``broadcast_one_to_all`` copies
them to every process in two steps (the length first, so every process passes an array of the same
shape, then the bytes). On a single process this is a no-op unless ``force=True`` (used by the tests
to run the real broadcast path).
"""

from __future__ import annotations

import json
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from exit_jax.curriculum.selection import Selection
from exit_jax.types import Instance


def encode_selection(selection: Selection) -> np.ndarray:
    """A Selection as a uint8 array of JSON bytes."""
    payload = {
        "instances": [inst.to_json() for inst in selection.instances],
        "from_buffer": selection.from_buffer.astype(bool).tolist(),
        "modes": selection.modes.astype(int).tolist(),
        "entry_ids": selection.entry_ids.astype(int).tolist(),
        "step": int(selection.step),
    }
    return np.frombuffer(json.dumps(payload).encode(), dtype=np.uint8).copy()


def decode_selection(encoded: np.ndarray) -> Selection:
    """Inverse of :func:`encode_selection`."""
    payload = json.loads(np.asarray(encoded, dtype=np.uint8).tobytes().decode())
    return Selection(
        instances=[Instance.from_json(d) for d in payload["instances"]],
        from_buffer=np.asarray(payload["from_buffer"], dtype=bool),
        modes=np.asarray(payload["modes"], dtype=np.int8),
        entry_ids=np.asarray(payload["entry_ids"], dtype=np.int64),
        step=payload["step"],
    )


def broadcast_bytes(payload: np.ndarray | None, force: bool = False) -> np.ndarray:
    """Copy process 0's uint8 ``payload`` to every process (other processes pass None)."""
    if jax.process_count() == 1 and not force:
        return np.asarray(payload, dtype=np.uint8)
    is_source = jax.process_index() == 0
    length = np.array([len(payload) if is_source else 0], dtype=np.int32)
    length = int(np.asarray(multihost_utils.broadcast_one_to_all(length, is_source=is_source))[0])
    buffer = np.zeros(length, dtype=np.uint8)
    if is_source:
        buffer[:] = payload
    received = multihost_utils.broadcast_one_to_all(buffer, is_source=is_source)
    return np.asarray(received, dtype=np.uint8)


def broadcast_selection(selection: Selection | None, force: bool = False) -> Selection:
    """Process 0's selection on every process (processes other than 0 pass None)."""
    if jax.process_count() == 1 and not force:
        if selection is None:
            raise ValueError("broadcast_selection: process 0 must pass its Selection")
        return selection
    encoded = encode_selection(selection) if jax.process_index() == 0 else None
    return decode_selection(broadcast_bytes(encoded, force=force))


def broadcast_json(value: Any, force: bool = False) -> Any:
    """Any JSON-serialisable value from process 0 to every process (e.g. buffer diagnostics)."""
    encoded = None
    if jax.process_index() == 0:
        encoded = np.frombuffer(json.dumps(value).encode(), dtype=np.uint8).copy()
    if jax.process_count() == 1 and not force:
        return value
    return json.loads(broadcast_bytes(encoded, force=force).tobytes().decode())
