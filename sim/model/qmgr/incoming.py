"""The upstream's receiving side: its smtpd's recipient validation and the incoming queue.

Public names: Incoming.

Contract:
- receive(msgs) takes new mail from a sender (arrival times may lie ahead of the clock): each
  message's recipients are validated as the upstream is configured at its arrival (a
  scheduled change is looked up, not taken from the configuration in force), turned-away
  recipients never enter the queue (rejected_at_upstream), a message left with none is not
  queued, and the rest get queue files (queue_file.new_files, counted at arrival) and wait in
  arrival order (several senders are merged) for the qmgr tick that takes them.
- f, rcpt: the waiting mail; drop(n) removes the first n (taken by a tick).
"""

from __future__ import annotations

import numpy as np

from sim.model.qmgr.queue_file import ARRIVAL, FIELDS, Grid, NewMail, new_files
from sim.model.relay import BOUNCED, DEFERRED, SENT, smtpd_code


class Incoming:
    """New mail waiting for its first attempt (see the module contract)."""

    def __init__(self, snaps, snap_times, relay, recorder, width: int):
        self.snaps, self.snap_times, self.relay, self.rec = snaps, snap_times, relay, recorder
        self.validating = any(up.recipient_validation != "none" for up in snaps)
        self.f = np.empty((0, len(FIELDS)))
        self.rcpt = np.zeros((0, width), dtype=np.int32)
        self.next_qid = 0
        self.last_probe = np.empty(0)  # verify cache: last probe time per known user id
        self._rows = recorder.rows(("received", "received_messages", "bytes"))

    def receive(self, msgs: dict) -> None:
        """New mail from a sender (see the module contract)."""
        if self.validating:
            snap = np.searchsorted(self.snap_times, msgs["arrival"], side="right") - 1
            parts = [self._validate({k: v[snap == j] for k, v in msgs.items()}, self.snaps[j])
                     for j in np.unique(snap)]
            msgs = {k: np.concatenate([p[k] for p in parts]) for k in msgs}
        n = msgs["arrival"].size
        f = np.empty((n, len(FIELDS)))
        rec = self.rec
        new_files(f, self.next_qid, NewMail(*(msgs[k] for k in NewMail._fields)),
                  Grid(rec.acc, self._rows, rec.duration, rec.interval, rec.n))
        self.next_qid += n
        several = n and len(self.f) and f[0, ARRIVAL] < self.f[-1, ARRIVAL]  # several senders
        self.f = np.concatenate([self.f, f]) if len(self.f) else f
        self.rcpt = (np.concatenate([self.rcpt, msgs["rcpt"]]) if len(self.rcpt)
                     else msgs["rcpt"])
        if several:
            order = np.argsort(self.f[:, ARRIVAL], kind="stable")
            self.f, self.rcpt = self.f[order], self.rcpt[order]

    def drop(self, n: int) -> None:
        """The first n waiting messages were taken by a tick."""
        if n:
            self.f, self.rcpt = self.f[n:], self.rcpt[n:]

    def _validate(self, msgs: dict, up) -> dict:
        """Recipient validation at the upstream's smtpd: turned-away recipients never enter
        the queue (counted in rejected_at_upstream); messages left with none are not queued.
        relay_recipient_maps: the relay's users as of `relay_recipient_maps_lag` ago.
        verify (reject_unverified_recipient): the answer to a probe of the relay at arrival:
        delivered -> accept; bounced -> unverified_recipient_reject_code; deferred or relay
        down -> 450. The upstream's soft_bounce = yes answers a 5xx as 4xx
        (relay.smtpd_code: counted in rejected_at_upstream_4xx). Probes are counted once per
        unknown recipient and once per known user per address_verify_positive_refresh_time
        (the verify cache); a stale positive cache entry after a user is removed is not
        modelled."""
        if up.recipient_validation == "none":
            return msgs
        relay, rec = self.relay, self.rec
        t = msgs["arrival"]
        rcpt = msgs["rcpt"]
        pending = rcpt != -2
        if up.recipient_validation == "relay_recipient_maps":
            users = relay.users_at(t - up.relay_recipient_maps_lag)[:, None]
            turned = pending & ~((rcpt >= 0) & (rcpt < users))
            code = np.full(t.size, up.unknown_relay_recipient_reject_code)
        else:
            reply = relay.reply(t, rcpt)
            down = relay.down(t)
            reply[down] = DEFERRED
            turned = pending & (reply != SENT)
            bounced = (reply == BOUNCED).any(axis=1)
            code = np.where(bounced, up.unverified_recipient_reject_code, 450)
            self._count_probes(t, rcpt, pending, up.address_verify_positive_refresh_time)
        code = smtpd_code(code, up.soft_bounce)  # what the sender is told
        nturned = turned.sum(axis=1)
        bins = rec.bins(t)
        rec.add("rejected_at_upstream", bins, nturned)
        rec.add("rejected_at_upstream_4xx", bins, np.where(code < 500, nturned, 0))
        rcpt = np.where(turned, -2, rcpt).astype(np.int32)
        keep = (rcpt != -2).any(axis=1)
        out = {k: v[keep] for k, v in msgs.items()}
        out["rcpt"] = rcpt[keep]
        return out

    def _count_probes(self, t, rcpt, pending, refresh: float) -> None:
        rows, cols = np.nonzero(pending)
        ids = rcpt[rows, cols]
        unknown = ids < 0
        n = int(unknown.sum())
        known = ids[~unknown]
        if known.size:
            first_t = t[rows[~unknown]]
            uid, first = np.unique(known, return_index=True)
            top = int(uid.max()) + 1
            if top > self.last_probe.size:
                self.last_probe = np.concatenate([self.last_probe,
                                                  np.full(top - self.last_probe.size, -np.inf)])
            due = first_t[first] - self.last_probe[uid] >= refresh
            self.last_probe[uid[due]] = first_t[first][due]
            n += int(due.sum())
        self.rec.add("probes", self.rec.bins(t[:1]), float(n))
