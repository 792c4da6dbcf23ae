"""The GRPO learner: advantages, losses, the sharded micro-batched train step, and ``GRPOLearner``.

See docs/rl.md for the maths (every formula has a NumPy reference test in tests/rl/) and the config fields.
Import the submodules directly: ``exit_jax.rl.config``, ``.advantages``, ``.losses``, ``.train_step``, ``.learner``,
``.batch``.
"""
