"""Progress for slow steps whose length is unknown (export, dequantizing): an elapsed-time bar."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

from tqdm.auto import tqdm


@contextlib.contextmanager
def step(label: str) -> Iterator[None]:
    """Show ``label`` with a ticking elapsed time until the block ends (off: RAGPRESS_QUIET=1)."""
    bar = tqdm(
        total=1, desc=label, bar_format="{desc}: {elapsed}", disable=True if _quiet() else None
    )  # None: off without a TTY
    done = threading.Event()

    def tick() -> None:
        while not done.wait(1.0):
            bar.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
        bar.update(1)
    finally:
        done.set()
        ticker.join()
        bar.close()


def _quiet() -> bool:
    return os.environ.get("RAGPRESS_QUIET", "") not in ("", "0")
