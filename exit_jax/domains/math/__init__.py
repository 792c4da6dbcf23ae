"""Competition math: boxed answers judged by math-verify, file loaders, a procedural offline source,
K-step metrics."""

from exit_jax.domains.math.domain import MathConfig, MathDomain

__all__ = ["MathConfig", "MathDomain"]
