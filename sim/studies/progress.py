"""Progress of a sweep on standard error: a tqdm bar on a terminal, else a line every 10 %.

Public names: Progress.

Contract:
- Progress(total, done=0, stream=sys.stderr, enabled=True): `done` counts runs found finished
  by an earlier sweep. update(done, running, failed, total) redraws: on a terminal a tqdm bar
  with runs done of total, how many are running and failed, and tqdm's estimate of the time
  left; otherwise one line each time another 10 % of the runs is done ("relaysim sweep: 40 %,
  12 of 30 runs done, 2 running, 0 failed, about 25 s left"). The estimate counts only the runs
  of this sweep. note(line) writes a line (above the bar on a terminal) even when disabled;
  close() ends the bar. With enabled=False nothing else is written.
- total may grow (replications added until a precision is reached).
"""

from __future__ import annotations

import sys
import time


class Progress:
    """See the module contract."""

    def __init__(self, total: int, done: int = 0, stream=None, enabled: bool = True):
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.start_done, self.t0 = done, time.monotonic()
        self.tenths = (10 * done) // max(total, 1)
        self.bar = None
        if enabled and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit="run", desc="relaysim sweep",
                            file=self.stream, dynamic_ncols=True, smoothing=0.1)

    def update(self, done: int, running: int, failed: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.total = total
            self.bar.set_postfix_str(f"{running} running, {failed} failed", refresh=False)
            self.bar.update(done - self.bar.n)
            return
        tenths = (10 * done) // max(total, 1)
        if tenths <= self.tenths:
            return
        self.tenths = tenths
        new = done - self.start_done
        left = ""
        if 0 < new and done < total:
            secs = (time.monotonic() - self.t0) / new * (total - done)
            left = (f", about {secs:.0f} s left" if secs < 120
                    else f", about {secs / 60:.0f} min left")
        self.stream.write(f"relaysim sweep: {100 * done // total} %, {done} of {total} runs "
                          f"done, {running} running, {failed} failed{left}\n")
        self.stream.flush()

    def note(self, line: str) -> None:
        """A line on the stream (above the bar on a terminal), shown even when disabled."""
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
