"""Task domains: competition math, multi-turn tool use (BFCL), machine-learning engineering (MLE). No JAX here."""
