"""sim.model.trace: a recorded arrival process handed over like a sender's mail."""

import numpy as np
import pytest
import simpy

from sim.model.sender import CHUNK_MESSAGES, NULL, REAL
from sim.model.trace import Trace, check_trace, trace_chunk, trace_messages, trace_process

T = Trace(np.array([0.0, 0.5, 3600.0, 7200.5]),
          np.array([[0, -2], [-1, 3], [2, -2], [1, 1]], dtype=np.int32),
          np.array([REAL, NULL, REAL, REAL], dtype=np.int8), np.array([1, 20, 300, 4000]))


def test_messages_of_a_window_are_the_queue_file_fields():
    b = trace_messages(T, 0.5, 3600.0, source=2)
    assert b["arrival"].tolist() == [0.5] and b["create"].tolist() == [0]
    assert b["rcpt"].tolist() == [[-1, 3]] and b["kind"].tolist() == [NULL]
    assert b["size"].dtype == np.float32 and b["source"].tolist() == [2]
    assert trace_messages(T, 10.0, 20.0, 0) is None


def test_the_process_hands_over_every_arrival_before_the_end_once():
    class Upstream:
        def __init__(self):
            self.got, self.heard = [], []

        def receive(self, msgs):
            self.got.append(msgs["arrival"])

        def heard_until(self, source, t):
            self.heard.append((source, t))

    env, up = simpy.Environment(), Upstream()
    env.process(trace_process(env, T, 0, up, duration=7200.0))
    env.run()
    assert np.concatenate(up.got).tolist() == [0.0, 0.5, 3600.0]  # 7200.5 is after the end
    assert up.heard[-1] == (0, np.inf)


def test_chunks_are_whole_hours_to_a_day():
    assert trace_chunk(T) == 86400.0
    many = np.linspace(0, 3600.0, 4 * CHUNK_MESSAGES)
    assert trace_chunk(T._replace(arrival=many)) == 3600.0


@pytest.mark.parametrize("field, value", [
    ("arrival", np.array([0.0, 2.0, 1.0, 3.0])), ("arrival", np.array([-1.0, 0, 1, 2])),
    ("rcpt", np.array([[0], [1], [-2], [0]], dtype=np.int32)), ("rcpt", np.zeros((3, 1))),
    ("kind", np.array([0, 1, 2, 7])), ("size", np.array([1, 2.5, 3, 4])),
    ("size", np.array([0, 1, 2, 3]))],
    ids=["unsorted", "negative", "no-recipient", "rows", "kind", "fraction", "zero-size"])
def test_check_trace_names_the_field(field, value):
    check_trace(T)
    with pytest.raises(ValueError, match=field):
        check_trace(T._replace(**{field: value}))
