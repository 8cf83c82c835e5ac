"""The process's resident memory, read from ``/proc/self/statm``, and its peak while a block runs."""

from __future__ import annotations

import resource
import threading

__all__ = ["PeakRss", "rss"]


def rss() -> int:
    """The resident set size of this process, in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


class PeakRss:
    """The highest RSS seen (sampled every 2 ms in a thread) while the block runs, minus the RSS before: a
    buffer read whole and freed at once still shows."""

    def __enter__(self) -> PeakRss:
        self.base = rss()
        self.peak = self.base
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.wait(0.002):
                self.peak = max(self.peak, rss())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())

    @property
    def growth(self) -> int:
        return self.peak - self.base
