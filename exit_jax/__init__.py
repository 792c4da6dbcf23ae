"""exit_jax: ExIt (Exploratory Iteration) on JAX/TPU.

GRPO on single self-iteration steps drawn from a learnability-ranked buffer of the policy's own partial histories.
See docs/architecture.md for the module map.
"""

__version__ = "0.1.0"
