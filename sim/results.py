"""The Results of one run: summary, time series, optional per-attempt table, provenance.

Public names: Results, TIMESERIES_UNITS, write_atomic.

Contract:
- Results.summary is a JSON-serialisable dict (units in the key names or below):
  recipients {received, delivered, bounced, expired, queued_at_end, rejected_at_upstream,
  rejected_at_upstream_4xx} (received: recipients accepted by the upstream; received =
  delivered + bounced + expired + queued_at_end; rejected_at_upstream: turned away at SMTP time
  by recipient validation, not queued), messages {received}, attempts (recipient delivery
  attempts), dsn {nondelivery, backscatter, delay}, relay {sessions, rejects_4xx, rejects_5xx,
  greylisted, probes}, deferred_peak_messages (the deferred queue's peak: its largest sample),
  queued_peak_messages (the peak of the messages queued upstream, deferred + active: the
  quantity of explain's Little's-law plateau),
  delivery_delay_s {p50, p95, p99, max} (delivered recipients, arrival to delivery).
- Results.timeseries: equal-length numpy arrays, one entry per sample (TIMESERIES_UNITS gives
  each column's unit). Levels are the state at the sample instant; cumulative counts include
  events at or before it; per-interval counts cover (previous sample, this sample].
- Results.attempts (record_attempts=True): message_id, recipient, t_s, outcome per attempt.
- Results carries its scenario, seed, versions and wall time (`provenance`).
- write_atomic(path, data) writes a file through a temporary name and a rename, so a reader
  never sees half a file and an interrupted run leaves the previous file intact.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TIMESERIES_UNITS = {
    "t_s": "s since start",
    "incoming": "messages", "active": "messages", "deferred": "messages",
    "deferred_recipients": "recipients", "active_recipients": "recipients",
    "queued_recipients": "recipients", "queued_bytes": "bytes",
    "received": "recipients (cumulative)", "delivered": "recipients (cumulative)",
    "bounced": "recipients (cumulative)", "expired": "recipients (cumulative)",
    "attempts": "recipient attempts (cumulative)", "dsn": "DSNs (cumulative)",
    "backscatter": "DSNs to forged senders (cumulative)",
    "relay_sessions": "SMTP sessions per interval", "rejects_4xx": "recipients per interval",
    "rejects_5xx": "recipients per interval",
    "greylisted": "recipients per interval (450 4.2.0, included in rejects_4xx)",
    "probes": "address-verification probes per interval",
    "rejected_at_upstream": "recipients per interval (turned away by the upstream's smtpd)",
}
QSHAPE_LABELS = ("5", "10", "20", "40", "80", "160", "320", "640", "1280", "1280+")


@dataclass
class Results:
    """What one run produced (see the module contract)."""
    scenario: Any
    seed: int
    summary: dict
    timeseries: dict[str, np.ndarray]
    qshape: np.ndarray  # (samples, 10): deferred messages per qshape age bucket
    delay_cdf: tuple[np.ndarray, np.ndarray]  # (delay s, share of delivered at or below)
    attempts: dict[str, np.ndarray] | None = None
    provenance: dict = field(default_factory=dict)

    def timeseries_csv(self) -> str:
        """One row per sample, header row first; t_s first; qshape buckets as age_<label>."""
        cols = list(self.timeseries)
        data = [self.timeseries[c] for c in cols]
        cols += [f"age_{lab}" for lab in QSHAPE_LABELS]
        data += list(self.qshape.T)
        lines = [",".join(cols)]
        for row in zip(*data, strict=True):
            lines.append(",".join(_fmt(v) for v in row))
        return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else f"{v:.6g}"


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write through a temporary file in the same folder, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a result file is for everyone
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
