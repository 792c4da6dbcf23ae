"""Orbax checkpoints of a whole run: device state (params, optimizer, reference) and host state (buffer, RNGs, step).

Saves are asynchronous, keep the last N, and atomic: Orbax writes into a temporary directory and renames it only when
complete, so a crash mid-save leaves the previous checkpoint as the latest. Every checkpoint records the experiment's
identity; resuming in a workdir that holds another experiment's checkpoints is refused with a message instead of
silently mixing runs. A checkpoint that fails to load names the step and directory and what to do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointMismatchError(RuntimeError):
    """The workdir's checkpoints belong to a different experiment, or cannot be read."""


def _abstract(tree: Any) -> Any:
    def one(x):
        if isinstance(x, jax.Array):
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
        return jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype)

    return jax.tree.map(one, tree)


class RunCheckpointer:
    """Save / restore ``device`` (jax arrays) and ``host`` (numpy arrays + JSON) under ``workdir/checkpoints``.

    Args:
      workdir: the run directory.
      identity: what makes a checkpoint belong to this run (experiment, preset, method, model); compared on restore.
      keep: how many recent checkpoints to keep.
      async_save: write in a background thread while training continues.
    """

    def __init__(self, workdir: str | Path, identity: dict[str, Any], keep: int = 3, async_save: bool = True):
        self.directory = Path(workdir).absolute() / "checkpoints"
        self.identity = json.loads(json.dumps(identity))
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save,
                                               create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def check_identity(self) -> None:
        """Refuse a workdir whose checkpoints belong to a different experiment (reads only the small JSON item)."""
        step = self.latest_step()
        if step is None:
            return
        try:
            saved = self.manager.restore(step, args=ocp.args.Composite(identity=ocp.args.JsonRestore()))["identity"]
        except Exception as err:  # orbax raises various types for unreadable files
            raise CheckpointMismatchError(
                f"{self.directory}/{step}: the checkpoint's identity cannot be read ({type(err).__name__}: {err}). "
                "If the checkpoint is corrupt, move that step directory away to resume from an earlier one, or "
                "pass a fresh --workdir.") from err
        if saved != self.identity:
            differing = sorted(k for k in set(saved) | set(self.identity) if saved.get(k) != self.identity.get(k))
            details = ", ".join(f"{k}: saved {saved.get(k)!r} vs now {self.identity.get(k)!r}" for k in differing)
            raise CheckpointMismatchError(
                f"{self.directory} holds checkpoints of a different run ({details}). Nothing was changed; pass a "
                "fresh --workdir, or rerun the original command to resume it.")

    def save(self, step: int, device: Any, host_arrays: dict[str, np.ndarray], host_json: dict[str, Any],
             force: bool = False) -> None:
        args = ocp.args.Composite(
            device=ocp.args.StandardSave(device),
            host_arrays=ocp.args.StandardSave(host_arrays),
            host_json=ocp.args.JsonSave(host_json),
            identity=ocp.args.JsonSave(self.identity),
        )
        self.manager.save(step, args=args, force=force)

    def restore(self, step: int, device_like: Any) -> tuple[Any, dict[str, np.ndarray], dict[str, Any]]:
        """Restore ``step``: device state into the structure and shardings of ``device_like``; host arrays as saved."""
        args = ocp.args.Composite(
            device=ocp.args.StandardRestore(_abstract(device_like)),
            host_arrays=ocp.args.StandardRestore(),
            host_json=ocp.args.JsonRestore(),
        )
        try:
            out = self.manager.restore(step, args=args)
        except Exception as err:
            raise CheckpointMismatchError(
                f"{self.directory}/{step}: cannot restore this checkpoint ({type(err).__name__}: {err}). Move the "
                f"step directory away to fall back to an earlier checkpoint, or start a fresh --workdir.") from err
        host_arrays = {k: np.asarray(v) for k, v in out["host_arrays"].items()}
        return out["device"], host_arrays, dict(out["host_json"])

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
