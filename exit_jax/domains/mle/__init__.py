"""Machine-learning engineering domain: Kaggle-style competitions, a sandbox for untrusted solution code, grading.

Entry points: ``domain.MLEDomain`` / ``domain.MLEConfig`` (the Domain protocol), ``sandbox.Sandbox``,
``grading.Evaluator``, ``builtin.get_competition``, ``scaffold.greedy_search``, and the CLI
``python -m exit_jax.domains.mle.run_solution``. See docs/mle.md.
"""
