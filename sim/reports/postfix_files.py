"""A run's Postfix-format files: the mail log, the exporter's metrics and postqueue -j snapshots,
written from the engine's attempt stream as the run goes.

Public names: PostfixFiles, parse_times.

Contract:
- PostfixFiles(maillog=DIR, metrics=FILE, snapshots=(DIR, times), duration=, epoch=, window=,
  sample=, labels=, run_folder=) checks every output can be written
  (sim.postfix.files.check_writable) before anything is simulated: a ScenarioError names the option.
  Its `on_attempts` goes to simulate(); close() writes the files (each through a temporary name and
  a rename) and returns what it wrote; abort() leaves nothing. Without any output it does nothing. A
  mail log asked for inside the run folder is written beside it and moved in by close(), after the
  run folder has been replaced.
- The mail log is sim.postfix.maillog's (one file per host), the metrics sim.postfix.exporter's
  (OpenMetrics text, a sample every `metrics_interval` s), the snapshots
  sim.postfix.postqueue's (postqueue-<time>.json per time, and at the run's end).
- parse_times("7d,14d") -> sorted run times in seconds; ScenarioError for a bad list.
"""

from __future__ import annotations

from pathlib import Path

from sim.errors import ScenarioError
from sim.postfix.files import check_writable
from sim.units import format_time, parse_time


def parse_times(text: str, key: str, duration: float) -> list[float]:
    """Run times from a comma-separated list of times (each within the run)."""
    out = []
    for item in filter(None, (x.strip() for x in str(text).split(","))):
        try:
            t = parse_time(key, item, "s")
        except ScenarioError:
            raise ScenarioError(key, text, "times like 7d,14d,36h within the run") from None
        if not 0 <= t <= duration:
            raise ScenarioError(key, text, f"times within the run (0 to {format_time(duration)})")
        out.append(float(t))
    if not out:
        raise ScenarioError(key, text, "at least one time like 7d")
    return sorted(set(out))


class PostfixFiles:
    """The run's Postfix-format outputs (see the module contract)."""

    def __init__(self, duration: float, maillog=None, metrics=None, snapshots=None,
                 epoch: float | None = None, window=None, sample: float = 1.0,
                 metrics_interval: float = 3600.0, labels: dict | None = None,
                 run_folder=None):
        import os

        from sim.postfix import maillog as ml
        self.duration = float(duration)
        self.epoch = ml.DEFAULT_EPOCH if epoch is None else float(epoch)
        self.maillog = maillog and check_writable(maillog, "--maillog", folder=True)
        self._final = None  # a mail log inside the run folder: written beside it, moved in
        if self.maillog and run_folder is not None:
            run = Path(os.path.abspath(run_folder))
            log = Path(os.path.abspath(self.maillog))
            if log == run or run in log.parents:
                self._final = log
                self.maillog = run.parent / f".{run.name}.maillog-{os.getpid()}"
        self.metrics = metrics and check_writable(metrics, "--metrics")
        self.snapshots = None
        if snapshots:
            folder, times = snapshots
            self.snapshots = (check_writable(folder, "--snapshot-at", folder=True),
                              sorted(set(times) | {self.duration}))
        self.options = {"window": window, "sample": sample}
        self.metrics_interval, self.labels = metrics_interval, labels or {}
        self._log = self._met = self._snap = None

    @property
    def on(self) -> bool:
        return bool(self.maillog or self.metrics or self.snapshots)

    def on_attempts(self, batch) -> None:
        """One batch of the attempt stream (sim.model.qmgr.ATTEMPT)."""
        if self._log is None and self._met is None and self._snap is None:
            self._open()
        for w in (self._log, self._met, self._snap):
            if w is not None:
                w.write(batch)

    def _open(self) -> None:
        from sim.postfix.exporter import MetricsWriter
        from sim.postfix.maillog import MaillogFolder
        from sim.postfix.postqueue import SnapshotWriter
        if self.maillog:
            self._log = MaillogFolder(self.maillog, epoch=self.epoch, **self.options)
        if self.metrics:
            self._met = MetricsWriter(self.duration, self.metrics_interval, self.epoch,
                                      self.labels)
        if self.snapshots:
            self._snap = SnapshotWriter(self.snapshots[1], self.epoch)

    def close(self) -> list[Path]:
        """Write the files; the paths written."""
        from sim.postfix.postqueue import write_postqueue
        from sim.results import write_atomic
        if not self.on:
            return []
        if self._log is None and self._met is None and self._snap is None:
            self._open()  # a run without attempts still has (empty) files
        written = []
        if self._log is not None:
            self._log.close()
            names = list(self._log.names.values())
            if self._final is not None:  # the run folder is in place now: move the log in
                import shutil
                shutil.rmtree(self._final, ignore_errors=True)
                self._final.parent.mkdir(parents=True, exist_ok=True)
                Path(self.maillog).replace(self._final)
                names = [self._final / p.name for p in names]
            written += names
        if self._met is not None:
            write_atomic(Path(self.metrics), self._met.close())
            written.append(Path(self.metrics))
        if self._snap is not None:
            folder = Path(self.snapshots[0])
            folder.mkdir(parents=True, exist_ok=True)
            for t, snap in zip(self.snapshots[1], self._snap.close(), strict=True):
                path = folder / f"postqueue-{format_time(t)}.json"
                write_postqueue(snap, path)
                written.append(path)
        return written

    def abort(self) -> None:
        """Leave nothing (an interrupted or failed run)."""
        if self._log is not None:
            self._log.abort()
        if self._final is not None:
            import shutil
            shutil.rmtree(self.maillog, ignore_errors=True)
