"""Multi-turn tool use on BFCL multi-turn tasks: simulated APIs from bfcl-eval, our state checker,
batched episodes with per-turn children."""

from exit_jax.domains.tooluse.domain import ToolUseConfig, ToolUseDomain

__all__ = ["ToolUseConfig", "ToolUseDomain"]
