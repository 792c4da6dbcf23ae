"""Test-wide setup: 8 fake CPU devices so every sharding test really shards.

The flag must be set before JAX is imported anywhere, which is why it lives here at import time.
"""
import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
