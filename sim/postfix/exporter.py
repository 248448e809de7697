"""postfix_exporter's metrics as OpenMetrics text, from an attempt stream, one sample per interval.

Public names: MetricsWriter, write_metrics, FAMILIES, AGE_BUCKETS, SIZE_BUCKETS, TIME_BUCKETS,
NRCPT_BUCKETS, QUEUES.

Contract (names, types, labels, help texts and bucket edges from the Go sources of
kumina/postfix_exporter, postfix_exporter.go, and Hsn723/postfix_exporter 0.20.4,
exporter/postfix_exporter.go and showq/showq.go; formats.md 1c):
- MetricsWriter(duration, interval, epoch) consumes ATTEMPT batches (sim/postfix/maillog.py)
  in any order and, at close(), returns the text: one sample per series at every sample time
  T = 0, interval, ... <= duration (run seconds), stamped epoch + T in Unix seconds, every
  series labelled instance="upstream"|"relay" (the host whose log the exporter would tail) and
  simulated="true" plus `labels`; families contiguous, series in time order, ending "# EOF".
- Counters count the events at or before T that the exporters count in the lines
  sim/postfix/maillog.py writes for the same stream: the upstream's smtpd/cleanup per received
  message, qmgr inserts per `(queue active)` line (every attempt), removed and expired
  messages, smtp delivery lines by status and dsn (status=SOFTBOUNCE lines by status only:
  both exporters count dsns of deferred and bounced lines), non-delivery notices; the relay's
  smtpd connects, disconnects, accepted messages and `NOQUEUE: reject` lines by code (a reject after
  an accepted recipient carries the queue id and is not counted, as in both exporters).
- Where the exporters differ, Hsn723 (the maintained one) is followed: sasl_method="NONE";
  postfix_smtp_delivery_delay_seconds observed on every delivery line but status=deferred
  (sent, bounced, SOFTBOUNCE: Hsn723 issue #413), with its four `stage` values named
  correctly (both exporters emit stage="", a bug: formats.md 1c); stage values are from
  delays=a/b/c/d, c being 0 (not modelled).
  postfix_smtp_deferred_messages_total is exported and stays 0, as in both exporters (never
  incremented); deferrals are postfix_smtp_status_deferred (kumina's name, no _total).
- showq (upstream only): postfix_showq_message_age_seconds and _size_bytes histograms and
  postfix_showq_queue_depth per queue (active, deferred, hold, incoming, maildrop), from each
  message's state at T: incoming from arrival to its first entry, active from each entry to
  that attempt's end, deferred until the next entry, gone once removed; a message whose last
  attempt left it deferred stays deferred to the end. A message first seen at a later attempt
  (tries > 1: queued before the run, an initial queue) was deferred from its arrival to that
  entry; one the run never tries is in no row of the stream and not counted. Age is
  T - arrival; age sums are rounded to the microsecond.
- Counter families are named with their `_total` (as the exporters' text exposition names
  them), which both `promtool check metrics` and `promtool tsdb create-blocks-from openmetrics`
  read; promtool's linter still flags kumina's own postfix_smtp_status_deferred for its missing
  suffix.
- Memory is bounded by the number of samples times the series, plus one small record per
  message in the queue; nothing is kept per attempt.
Errors: ValueError for a batch not of dtype ATTEMPT, or a non-positive interval/duration.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from sim.model.qmgr.rules import LOST, NO_SESSION, SUSPENDED
from sim.postfix.maillog import ATTEMPT, BOUNCED, DEFERRED, EXPIRED, NULL, delivery_status
from sim.results import write_atomic

AGE_BUCKETS = (1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8)
SIZE_BUCKETS = (1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9)
TIME_BUCKETS = (1e-3, 1e-2, 1e-1, 1.0, 10, 60, 3600, 86400, 2 * 86400)
NRCPT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
QUEUES = ("active", "deferred", "hold", "incoming", "maildrop")
STAGES = ("before_queue_manager", "queue_manager", "connection_setup", "transmission")
_Q = {q: i for i, q in enumerate(QUEUES)}

#: (name, type, help, buckets or None) of every family written, in the order written
FAMILIES = (
    ("postfix_up", "gauge", "Whether scraping Postfix's metrics was successful.", None),
    ("postfix_showq_message_age_seconds", "histogram",
     "Age of messages in Postfix's message queue, in seconds", AGE_BUCKETS),
    ("postfix_showq_message_size_bytes", "histogram",
     "Size of messages in Postfix's message queue, in bytes", SIZE_BUCKETS),
    ("postfix_showq_queue_depth", "gauge", "Number of messages in Postfix's message queue", None),
    ("postfix_cleanup_messages_processed_total", "counter",
     "Total number of messages processed by cleanup.", None),
    ("postfix_qmgr_messages_inserted_receipients", "histogram",
     "Legacy metric, please switch to postfix_qmgr_messages_inserted_recipients.",
     NRCPT_BUCKETS),
    ("postfix_qmgr_messages_inserted_recipients", "histogram",
     "Number of recipients per message inserted into the mail queues.", NRCPT_BUCKETS),
    ("postfix_qmgr_messages_inserted_size_bytes", "histogram",
     "Size of messages inserted into the mail queues in bytes.", SIZE_BUCKETS),
    ("postfix_qmgr_messages_removed_total", "counter",
     "Total number of messages removed from mail queues.", None),
    ("postfix_qmgr_messages_expired_total", "counter",
     "Total number of messages expired from mail queues.", None),
    ("postfix_smtp_delivery_delay_seconds", "histogram",
     "SMTP message processing time in seconds.", TIME_BUCKETS),
    ("postfix_smtp_deferred_messages_total", "counter",
     "Total number of messages that have been deferred on SMTP.", None),
    ("postfix_smtp_messages_processed_total", "counter",
     "Total number of messages that have been processed by the smtp process.", None),
    ("postfix_smtp_deferred_messages_by_dsn_total", "counter",
     "Total number of messages that have been deferred on SMTP by DSN.", None),
    ("postfix_smtp_bounced_messages_by_dsn_total", "counter",
     "Total number of messages that have been bounced on SMTP by DSN.", None),
    ("postfix_smtp_status_deferred", "counter", "Total number of messages deferred.", None),
    ("postfix_smtpd_connects_total", "counter", "Total number of incoming connections.", None),
    ("postfix_smtpd_disconnects_total", "counter", "Total number of incoming disconnections.",
     None),
    ("postfix_smtpd_messages_processed_total", "counter", "Total number of messages processed.",
     None),
    ("postfix_smtpd_messages_rejected_total", "counter", "Total number of NOQUEUE rejects.", None),
    ("postfix_bounce_non_delivery_notification_total", "counter",
     "Total number of non delivery notification sent by bounce.", None),
)
_FAMILY = {f[0]: f for f in FAMILIES}


def _dsn(code: np.ndarray, user: np.ndarray) -> np.ndarray:
    """The dsn= of the delivery line maillog writes for each row (maillog._reply's codes)."""
    out = np.full(len(code), "", dtype="<U5")
    out[code == 250] = "2.0.0"
    out[np.isin(code, NO_SESSION)] = "4.4.1"
    out[code == LOST] = "4.4.2"
    out[code == 421] = "4.7.0"
    out[(code == 450) & (user < 0)] = "4.1.1"
    out[(code == 550) & (user < 0)] = "5.1.1"
    out[(code == 450) & (user >= 0)] = "4.2.0"
    out[code == 451] = "4.3.0"
    rest = out == ""
    out[rest] = np.char.add((code[rest] // 100).astype(str), ".7.1")
    return out


class MetricsWriter:
    """Accumulates the metrics of an attempt stream; see the module contract."""

    def __init__(self, duration: float, interval: float = 3600.0, epoch: float | None = None,
                 labels: dict[str, str] | None = None):
        from sim.postfix.maillog import DEFAULT_EPOCH
        if not interval > 0 or not duration > 0:
            raise ValueError(f"interval {interval} and duration {duration} must be positive")
        self.interval = float(interval)
        self.t = np.arange(0.0, duration + interval / 2, interval)
        self.epoch = DEFAULT_EPOCH if epoch is None else float(epoch)
        self.labels = dict(labels or {})
        self.counts: dict[tuple, np.ndarray] = {}      # (family, instance, labels) -> per sample
        self.hist: dict[tuple, list] = {}              # same -> [bucket counts, count, sum]
        n, nq = len(self.t), len(QUEUES)
        # showq as difference arrays over the samples (a span adds +1 where it starts covering
        # samples and -1 where it stops; cumsum at close gives the levels)
        self.d_n = np.zeros((nq, n + 1))
        self.d_arrival = np.zeros((nq, n + 1))          # sum of arrivals, for the age sum
        self.d_age = np.zeros((nq, len(AGE_BUCKETS), n + 1))
        self.d_size = np.zeros((nq, len(SIZE_BUCKETS), n + 1))
        self.d_size_sum = np.zeros((nq, n + 1))
        self.live: dict[int, tuple] = {}  # qid -> (last end, arrival, size) of deferred ones

    # --- events -------------------------------------------------------------------------------

    def _bins(self, t: np.ndarray) -> np.ndarray:
        """Sample index from which an event at t is counted (events at or before T count)."""
        return np.clip(np.ceil(np.asarray(t) / self.interval - 1e-9), 0, None).astype(np.int64)

    def _count(self, family: str, instance: str, t: np.ndarray, **labels) -> None:
        key = (family, instance, tuple(sorted(labels.items())))
        c = self.counts.setdefault(key, np.zeros(len(self.t) + 1))
        np.add.at(c, np.minimum(self._bins(t), len(self.t)), 1)

    def _observe(self, family: str, instance: str, t: np.ndarray, v: np.ndarray,
                 **labels) -> None:
        edges = np.asarray(_FAMILY[family][3], dtype=float)
        key = (family, instance, tuple(sorted(labels.items())))
        n = len(self.t) + 1
        h = self.hist.setdefault(key, [np.zeros((n, len(edges))), np.zeros(n), np.zeros(n)])
        b = np.minimum(self._bins(t), len(self.t))
        le = np.asarray(v)[:, None] <= edges[None, :]
        np.add.at(h[0], b, le)
        np.add.at(h[1], b, 1)
        np.add.at(h[2], b, v)

    def write(self, batch: np.ndarray) -> None:
        """Add one batch of the attempt stream."""
        if batch.dtype != ATTEMPT:
            raise ValueError(f"batch dtype {batch.dtype}; expected maillog.ATTEMPT")
        if len(batch) == 0:
            return
        a = batch
        q, tr = a["qid"], a["tries"]
        new = np.concatenate([[True], (q[1:] != q[:-1]) | (tr[1:] != tr[:-1])])
        att = np.cumsum(new) - 1                       # attempt index of each row
        first = np.flatnonzero(new)
        na = len(first)
        end = np.maximum.reduceat(a["end"], first)
        any_def = np.bitwise_or.reduceat((a["outcome"] == DEFERRED).astype(np.int8), first) > 0
        any_exp = np.bitwise_or.reduceat((a["outcome"] == EXPIRED).astype(np.int8), first) > 0
        any_bnc = np.bitwise_or.reduceat((a["outcome"] == BOUNCED).astype(np.int8), first) > 0
        h = a[first]
        connected = ~np.isin(h["code"], NO_SESSION)
        acc = a["code"] == 250
        n_acc = np.add.reduceat(acc.astype(np.int64), first)
        # upstream: arrival lines at the first attempt
        fresh = h["tries"] == 1
        for fam in ("postfix_smtpd_connects_total", "postfix_smtpd_disconnects_total",
                    "postfix_cleanup_messages_processed_total"):
            self._count(fam, "upstream", h["arrival"][fresh])
        self._count("postfix_smtpd_messages_processed_total", "upstream", h["arrival"][fresh],
                    sasl_method="NONE")
        # upstream qmgr: one (queue active) line per attempt
        for fam in ("postfix_qmgr_messages_inserted_receipients",
                    "postfix_qmgr_messages_inserted_recipients"):
            self._observe(fam, "upstream", h["entry"], h["nrcpt"].astype(float))
        self._observe("postfix_qmgr_messages_inserted_size_bytes", "upstream", h["entry"],
                      h["size"].astype(float))
        self._count("postfix_qmgr_messages_removed_total", "upstream", end[~any_def])
        self._count("postfix_qmgr_messages_expired_total", "upstream", end[any_exp])
        self._count("postfix_bounce_non_delivery_notification_total", "upstream",
                    end[(any_bnc | any_exp) & (h["kind"] != NULL)])
        # upstream smtp: one delivery line per row (a row deferred because the relay was dead
        # is the error service's line: no smtp family counts it)
        d = a[a["code"] != SUSPENDED]
        status = delivery_status(d["outcome"], d["code"])
        dsn = _dsn(d["code"], d["user"])
        for s in ("sent", "deferred", "bounced", "SOFTBOUNCE"):
            m = status == s
            if m.any():
                self._count("postfix_smtp_messages_processed_total", "upstream", d["end"][m],
                            status=s)
        m = status == "deferred"
        self._count("postfix_smtp_status_deferred", "upstream", d["end"][m])
        for x in np.unique(dsn[m]):
            self._count("postfix_smtp_deferred_messages_by_dsn_total", "upstream",
                        d["end"][m & (dsn == x)], dsn=str(x))
        for x in np.unique(dsn[status == "bounced"]):
            self._count("postfix_smtp_bounced_messages_by_dsn_total", "upstream",
                        d["end"][(status == "bounced") & (dsn == x)], dsn=str(x))
        final = ~m  # Hsn723 #413: every line but status=deferred (SOFTBOUNCE too)
        stages = (d["entry"] - d["arrival"], d["start"] - d["entry"],
                  np.zeros(len(d)), d["end"] - d["start"])
        for stage, v in zip(STAGES, stages, strict=True):
            self._observe("postfix_smtp_delivery_delay_seconds", "upstream", d["end"][final],
                          v[final], stage=stage)
        # relay smtpd: sessions, accepted messages, NOQUEUE rejects (before any accepted RCPT,
        # and before a 421 ends the session)
        self._count("postfix_smtpd_connects_total", "relay", h["start"][connected])
        self._count("postfix_smtpd_disconnects_total", "relay",
                    end[connected & (h["code"] != LOST)])  # a lost session logs no disconnect
        took = connected & (n_acc > 0)
        self._count("postfix_smtpd_messages_processed_total", "relay", h["start"][took],
                    sasl_method="NONE")
        self._count("postfix_cleanup_messages_processed_total", "relay", end[took])
        for fam in ("postfix_qmgr_messages_inserted_receipients",
                    "postfix_qmgr_messages_inserted_recipients"):
            self._observe(fam, "relay", end[took], n_acc[took].astype(float))
        self._observe("postfix_qmgr_messages_inserted_size_bytes", "relay", end[took],
                      h["size"][took].astype(float))
        c = np.cumsum(acc) - acc
        acc_before = c - c[first][att]
        e = np.cumsum(a["code"] == 421) - (a["code"] == 421)
        cut_before = e - e[first][att]
        noqueue = ((a["code"] >= 400) & (a["code"] != 421) & (acc_before == 0)
                   & (cut_before == 0))
        for code in np.unique(a["code"][noqueue]):
            self._count("postfix_smtpd_messages_rejected_total", "relay",
                        a["start"][noqueue & (a["code"] == code)], code=str(code))
        self._showq(h, end, any_def, na)

    def _spans(self, qi: np.ndarray, lo: np.ndarray, hi: np.ndarray, arrival: np.ndarray,
               size: np.ndarray) -> None:
        """Message k is in queue qi[k] during [lo[k], hi[k]): add it to the samples there."""
        t = self.t
        i0 = np.searchsorted(t, lo, side="left")
        i1 = np.searchsorted(t, hi, side="left")
        m = i1 > i0
        qi, i0, i1, arrival, size = qi[m], i0[m], i1[m], arrival[m], size[m]
        for d, v in ((self.d_n, 1.0), (self.d_arrival, arrival), (self.d_size_sum, size)):
            np.add.at(d, (qi, i0), v)
            np.add.at(d, (qi, i1), -np.asarray(v, dtype=float) if np.ndim(v) else -v)
        for e, edge in enumerate(AGE_BUCKETS):
            # age T - arrival <= edge while T <= arrival + edge
            j = np.minimum(i1, np.searchsorted(t, arrival + edge, side="right"))
            k = j > i0
            np.add.at(self.d_age, (qi[k], e, i0[k]), 1)
            np.add.at(self.d_age, (qi[k], e, j[k]), -1)
        for e, edge in enumerate(SIZE_BUCKETS):
            k = size <= edge
            np.add.at(self.d_size, (qi[k], e, i0[k]), 1)
            np.add.at(self.d_size, (qi[k], e, i1[k]), -1)

    def _showq(self, h: np.ndarray, end: np.ndarray, any_def: np.ndarray, na: int) -> None:
        qid, arrival, entry = h["qid"].tolist(), h["arrival"], h["entry"]
        ends = end.tolist()
        before = np.empty(na)       # start of the span before this entry
        first = np.empty(na, dtype=bool)
        live = self.live
        for i in range(na):
            prev = live.pop(qid[i], None)
            first[i] = prev is None
            before[i] = arrival[i] if prev is None else prev[0]
            if any_def[i]:
                live[qid[i]] = (ends[i], float(arrival[i]), float(h["size"][i]))
        size = h["size"].astype(float)
        # a first attempt in the stream that is not the message's first: it was deferred
        # before the run (a run started from a real queue)
        qi = np.where(first & (h["tries"] == 1), _Q["incoming"], _Q["deferred"])
        self._spans(np.concatenate([qi, np.full(na, _Q["active"])]),
                    np.concatenate([before, entry]), np.concatenate([entry, end]),
                    np.concatenate([arrival, arrival]), np.concatenate([size, size]))

    # --- output -------------------------------------------------------------------------------

    def close(self) -> str:
        """The OpenMetrics text of everything written."""
        if self.live:
            last, arrival, size = (np.array(c, dtype=float) for c in zip(*self.live.values(),
                                                                          strict=True))
            self._spans(np.full(len(last), _Q["deferred"]), last, np.full(len(last), np.inf),
                        arrival, size)
        self.live = {}
        n = len(self.t)
        self.showq_n = np.cumsum(self.d_n, axis=1)[:, :n]
        self.showq_age = np.moveaxis(np.cumsum(self.d_age, axis=2)[:, :, :n], 1, 2)
        # count x T - sum of arrivals cancels: rounded to the microsecond (the log's resolution)
        self.showq_age_sum = np.round(self.showq_n * self.t[None, :]
                                      - np.cumsum(self.d_arrival, axis=1)[:, :n], 6) + 0.0
        self.showq_size = np.moveaxis(np.cumsum(self.d_size, axis=2)[:, :, :n], 1, 2)
        self.showq_size_sum = np.cumsum(self.d_size_sum, axis=1)[:, :n]
        out: list[str] = []
        stamps = [_num(self.epoch + t) for t in self.t]
        for name, kind, help_, edges in FAMILIES:
            out.append(f"# HELP {name} {help_}\n# TYPE {name} {kind}\n")
            for inst, labels, values in self._series(name):
                base = {**labels, "instance": inst, "simulated": "true", **self.labels}
                if kind == "histogram":
                    b, n, s = values
                    for k, ts in enumerate(stamps):
                        for j, edge in enumerate(edges):
                            out.append(f"{name}_bucket{_labels({**base, 'le': _num(edge)})} "
                                       f"{_num(b[k, j])} {ts}\n")
                        out.append(f"{name}_bucket{_labels({**base, 'le': '+Inf'})} "
                                   f"{_num(n[k])} {ts}\n")
                        out.append(f"{name}_count{_labels(base)} {_num(n[k])} {ts}\n")
                        out.append(f"{name}_sum{_labels(base)} {_num(s[k])} {ts}\n")
                else:
                    lab = _labels(base)
                    out.extend(f"{name}{lab} {_num(v)} {ts}\n"
                               for v, ts in zip(values, stamps, strict=True))
        out.append("# EOF\n")
        return "".join(out)

    def _series(self, name: str):
        n = len(self.t)
        if name == "postfix_up":
            yield "upstream", {"path": "/var/spool/postfix/public/showq"}, np.ones(n)
            return
        if name.startswith("postfix_showq_"):
            for qi, q in enumerate(QUEUES):
                if name.endswith("age_seconds"):
                    yield "upstream", {"queue": q}, (self.showq_age[qi], self.showq_n[qi],
                                                     self.showq_age_sum[qi])
                elif name.endswith("size_bytes"):
                    yield "upstream", {"queue": q}, (self.showq_size[qi], self.showq_n[qi],
                                                     self.showq_size_sum[qi])
                else:
                    yield "upstream", {"queue": q}, self.showq_n[qi]
            return
        if name == "postfix_smtp_deferred_messages_total":
            yield "upstream", {}, np.zeros(n)  # never incremented by either exporter
            return
        keys = sorted(k for k in (*self.counts, *self.hist) if k[0] == name)
        for key in keys:
            _, inst, labels = key
            if key in self.counts:
                yield inst, dict(labels), np.cumsum(self.counts[key])[:n]
            else:
                b, c, s = self.hist[key]
                yield inst, dict(labels), (np.cumsum(b, axis=0)[:n], np.cumsum(c)[:n],
                                           np.cumsum(s)[:n])


def _num(x: float) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


def _labels(d: dict) -> str:
    def esc(v: str) -> str:
        return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in d.items()) + "}"


def write_metrics(batches: Iterable[np.ndarray], path: Path | str, duration: float,
                  **options) -> None:
    """MetricsWriter over a stream, written to `path` atomically."""
    w = MetricsWriter(duration, **options)
    for b in batches:
        w.write(b)
    write_atomic(Path(path), w.close())
