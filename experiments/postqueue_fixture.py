"""Real `postqueue -j` output for tests/data/postqueue/: a small live-looking 450 backlog.

Question: what does Postfix 3.7's own `postqueue -j` print for the queue states relaysim reads
(deferred by a 450 RCPT reject, deferred by a dead relay, held, forced to expire, null sender,
several recipients of which some were delivered, a message still in maildrop)?

How: the lab's upstream + relay pair (experiments/postfix_lab.py, both on 127.0.0.1), the relay
answering 450 for unknown users; the upstream also routes `down.test` to a closed port on
127.0.0.1 (Connection refused). Messages are injected over SMTP; once each has had its first
attempt, one is put on hold (`postsuper -h`), one forced to expire (`postsuper -e`), and the
queue is listed with the real `postqueue -j` while Postfix runs (`running.jsonl`), about 75 s
after the messages arrived, and the real `qshape` is run on the same queue with several options
(`qshape.json`: arguments, the Unix time it ran, its output; `--quick` skips the wait). Then the
upstream is stopped, one message is dropped into its maildrop with `sendmail -bm` (a stopped
instance's queue), and `postqueue -j` is run again on the stopped instance (`stopped.jsonl`;
postqueue runs showq itself for root when the mail system is down). Long timers keep the
messages where they are while listing. Needs root and Postfix; writes tests/data/postqueue/
(or the folder given as the first argument).
"""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import postfix_lab as pl

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "postqueue"
DOWN = "down.test"
TIMING = {"queue_run_delay": "300s", "minimal_backoff_time": "300s",
          "maximal_backoff_time": "4000s", "maximal_queue_lifetime": "5d",
          "bounce_queue_lifetime": "5d"}

# (sender, recipients, body bytes to add): the queue the tests read
MESSAGES = [
    ("sender1@upstream.test", ["unknown1@example.test"], 0),
    ("sender2@upstream.test", ["unknown2@example.test", "alice@example.test"], 20_000),
    ("", ["unknown3@example.test"], 0),                       # null sender (a bounce)
    ("sender4@upstream.test", ["bob@down.test"], 3_000),       # relay down: Connection refused
    ("sender5@upstream.test", ["unknown5@example.test"], 0),   # put on hold
    ("sender6@upstream.test", ["unknown6@example.test"], 0),   # forced to expire
    ("sender7@upstream.test", ["unknown7@example.test", "unknown8@example.test",
                               "carol@example.test"], 150_000),
]


def _send(port: int, index: int, sender: str, rcpts: list[str], pad: int) -> str:
    msg = EmailMessage()
    msg["From"] = sender or "MAILER-DAEMON@upstream.test"
    msg["To"] = ", ".join(rcpts)
    msg["Subject"] = f"relaysim postqueue fixture {index}"
    msg["Message-ID"] = pl.message_id(index)
    msg.set_content("x" * pad + "\n")
    with smtplib.SMTP("127.0.0.1", port, local_hostname="sender.lab", timeout=30) as s:
        s.ehlo()
        s.mail(sender)
        for r in rcpts:
            s.rcpt(r)
        code, reply = s.data(msg.as_bytes())
    return reply.decode().rsplit(" ", 1)[-1]


def _postqueue(inst: pl.Instance) -> str:
    res = subprocess.run([pl.POSTQUEUE, "-c", str(inst.config_dir), "-j"], capture_output=True,
                         text=True, check=True, timeout=60)
    return res.stdout


QSHAPE_RUNS = (["deferred"], ["-s", "deferred"], ["hold", "deferred"],
               ["-t", "1", "-b", "4", "deferred"], ["-l", "-t", "1", "-b", "5", "deferred"],
               ["-s", "-t", "1", "hold", "deferred"])


def _qshape(inst: pl.Instance) -> list[dict]:
    runs = []
    for args in QSHAPE_RUNS:
        now = time.time()
        res = subprocess.run(["qshape", "-c", str(inst.config_dir), *args], capture_output=True,
                             text=True, check=True, timeout=60)
        runs.append({"args": args, "now": now, "output": res.stdout})
    return runs


def main(out: Path = OUT, quick: bool = False) -> int:
    out.mkdir(parents=True, exist_ok=True)
    closed = pl.free_port()  # nothing listens there: connect() is refused
    with pl.lab(reject_code=450, timing=TIMING) as lab:
        up = lab.upstream
        pl.set_params(up, transport_maps=(
            f"inline:{{{pl.RELAY_DOMAIN}=smtp:[127.0.0.1]:{lab.relay.port}, "
            f"{DOWN}=smtp:[127.0.0.1]:{closed}}}"))
        pl.reload(up)
        time.sleep(2)
        t_sent = time.time()
        qids = [_send(up.port, i, *m) for i, m in enumerate(MESSAGES)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            counts = pl.sample_queue(up.config_dir)
            if counts.get("deferred", 0) == len(MESSAGES) and not counts.get("active"):
                break
            time.sleep(0.5)
        else:
            raise TimeoutError(f"not every message deferred: {counts}")
        postsuper = ["postsuper", "-c", str(up.config_dir)]
        subprocess.run([*postsuper, "-h", qids[4]], check=True, capture_output=True)
        subprocess.run([*postsuper, "-e", qids[5]], check=True, capture_output=True)
        if not quick:
            time.sleep(max(0.0, t_sent + 75 - time.time()))
        (out / "running.jsonl").write_text(_postqueue(up))
        (out / "qshape.json").write_text(json.dumps(_qshape(up), indent=1) + "\n")
        pl.stop(up)
        subprocess.run(["sendmail", "-C", str(up.config_dir), "-bm", "-f",
                        "sender8@upstream.test", "unknown9@example.test"],
                       input=f"Subject: maildrop\nMessage-ID: {pl.message_id(8)}\n\nhi\n",
                       text=True, check=True, timeout=30)
        (out / "stopped.jsonl").write_text(_postqueue(up))
    for name in ("running.jsonl", "stopped.jsonl"):
        print(f"{out / name}: {len((out / name).read_text().splitlines())} lines")
    return 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--quick"]
    sys.exit(main(Path(args[0]) if args else OUT, quick="--quick" in sys.argv))
