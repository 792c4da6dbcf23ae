"""exit_jax/filelock.py: the lock the warm-start cache and the built-in competitions' cache take."""

import threading
import time

from exit_jax.filelock import file_lock


def test_file_lock_serialises_holders(tmp_path):
    """A second holder enters only after the first has left (so a sweep's parallel members of one base seed train
    its warm start once, and two processes build a built-in competition once); ``None`` takes no lock."""
    path = tmp_path / "cache" / "key.lock"
    events: list[str] = []
    first_inside = threading.Event()

    def second():
        first_inside.wait()
        with file_lock(path):
            events.append("second in")

    thread = threading.Thread(target=second)
    thread.start()
    with file_lock(path):
        first_inside.set()
        time.sleep(0.5)  # the second holder is blocked meanwhile; without the lock it would append first
        events.append("first out")
    thread.join(timeout=30)
    assert events == ["first out", "second in"]
    with file_lock(None):
        pass
