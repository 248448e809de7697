"""sim.reports.plotting: reproducible figure files, the standard figures, tables."""

import numpy as np
import pytest

from sim.reports import plotting


def _inputs(n=97):
    t = np.arange(n) * 3600.0
    ramp = np.minimum(np.arange(n), 50) * 10.0
    ts = {"t_s": t, "active": np.full(n, 3.0), "deferred": ramp, "deferred_recipients": ramp,
          "queued_recipients": ramp + 3, "queued_bytes": ramp * 2e4,
          "received": np.arange(n) * 20.0, "delivered": np.arange(n) * 13.0,
          "bounced": np.zeros(n), "expired": np.zeros(n), "attempts": np.arange(n) * 40.0,
          "dsn": np.zeros(n), "backscatter": np.zeros(n), "relay_sessions": np.full(n, 40.0),
          "rejects_4xx": np.full(n, 27.0), "rejects_5xx": np.zeros(n)}
    qshape = np.zeros((n, 10), dtype=np.int64)
    qshape[:, -1] = ramp.astype(np.int64)
    edges = np.geomspace(1e-3, 1e5, 300)
    return ts, qshape, (edges, np.linspace(0, 1, edges.size)), [(86400.0, "change")]


def test_standard_figures_writes_png_and_svg(tmp_path):
    paths = plotting.standard_figures(*_inputs(), "test run", tmp_path)
    names = sorted(p.name for p in paths)
    assert names == sorted(f"{s}.{e}" for s in ("queue", "qshape", "delay_cdf", "relay_load")
                           for e in ("png", "svg"))
    assert all(p.stat().st_size > 1000 for p in paths)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_same_input_gives_identical_bytes(tmp_path):
    a = plotting.standard_figures(*_inputs(), "same", tmp_path / "a")
    b = plotting.standard_figures(*_inputs(), "same", tmp_path / "b")
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name


def test_svg_has_no_date_and_png_no_software(tmp_path):
    plotting.standard_figures(*_inputs(), "meta", tmp_path)
    assert b"<dc:date>" not in (tmp_path / "queue.svg").read_bytes()
    assert b"Software" not in (tmp_path / "queue.png").read_bytes()


def test_standard_figures_without_deliveries(tmp_path):
    ts, q, _, _ = _inputs(5)
    paths = plotting.standard_figures(ts, q, (np.empty(0), np.empty(0)), [], "empty", tmp_path)
    assert len(paths) == 8


def test_band_with_one_seed_has_no_interval():
    with plotting.style():
        fig, ax = plotting.figure()
        m, lo, hi = plotting.band(ax, np.arange(3), np.array([[1.0, 2.0, 3.0]]), "one")
        assert np.isnan(lo).all() and list(m) == [1, 2, 3]
        plotting.plt.close(fig)


def test_rebin_sums_to_hourly_rates():
    t = np.arange(13) * 600.0  # 10-minute samples: sample 0, then two hours
    counts = np.r_[0, np.ones(6), 2 * np.ones(6)]
    ends, rate = plotting.rebin(t, counts, 3600)
    assert list(ends) == [3600, 7200] and list(rate) == [6, 12]


def test_save_table_quotes_and_checks_lengths(tmp_path):
    path = plotting.save_table(tmp_path / "t", {"a, b": [1, 2.5], "c": ["x", "y,z"]})
    assert path.read_text() == '"a, b",c\n1,x\n2.5,"y,z"\n'
    with pytest.raises(ValueError, match="different lengths"):
        plotting.save_table(tmp_path / "u", {"a": [1], "b": [1, 2]})


def test_event_labels_neither_overlap_nor_leave_the_axes():
    with plotting.style():
        fig, ax = plotting.figure()
        ax.plot([0, 4], [0, 1])
        ax.legend(["a line"], loc="upper left")
        plotting.mark_events(ax, [(0.0, "relay outage (6h)"), (0.1 * 86400, "relay back"),
                                  (0.12 * 86400, "relay.code = 550"),
                                  (3.95 * 86400, "a label at the right edge")])
        plotting._place_event_labels(fig)
        r = fig.canvas.get_renderer()
        boxes = [a.get_window_extent(r) for a in ax.texts]
        frame, legend = ax.get_window_extent(r), ax.get_legend().get_window_extent(r)
        for i, b in enumerate(boxes):
            assert frame.x0 <= b.x0 and b.x1 <= frame.x1, ax.texts[i].get_text()
            assert not b.overlaps(legend)
            assert not any(b.overlaps(o) for o in boxes[:i])
        plotting.plt.close(fig)


def test_zero_label_calls_out_a_flat_zero_line():
    assert plotting.zero_label("DSNs", np.zeros(4)) == "DSNs (0 throughout)"
    assert plotting.zero_label("DSNs", [0, 1]) == "DSNs"
    assert plotting.zero_label("queue", [0, 0.23], top=4000, unit="messages") == \
        "queue (at most 0.23 messages)"
    assert plotting.zero_label("queue", [0, 23], top=4000) == "queue (at most 23)"
    assert plotting.zero_label("queue", [0, 230], top=4000) == "queue"


def test_rebin_with_an_origin_ends_a_bin_there():
    t = np.arange(10) * 150.0  # a change at 450 s: bins of 600 s end at 450 and 1050
    ends, rate = plotting.rebin(t, np.r_[0, 1, 1, 1, 5, 5, 5, 5, 0, 0], 600, origin=450.0)
    assert list(ends) == [1050] and list(rate) == [20 * 6]


def test_a_short_outage_gets_a_shaded_zoom_panel(tmp_path):
    ts, q, cdf, _ = _inputs()
    day = 86400.0
    outage = [(1.5 * day, 1.5 * day + 6 * 3600)]
    frame = plotting._Frame(ts["t_s"], [(1.5 * day, "relay outage (6h)")], outage)
    assert frame.zoom() == (1.5 * day, 1.5 * day - 3 * 3600, 1.5 * day + 18 * 3600)
    assert plotting._Frame(ts["t_s"], [], [(0.0, 2 * day)]).zoom() is None  # long: no zoom
    with plotting.style():
        fig = plotting._load_figure(ts, frame, "zoom")
        assert len(fig.axes) == 2 and fig.axes[1].get_xlabel().startswith("hours since")
        assert all(any(p.get_label().startswith("relay down") for p in ax.patches)
                   for ax in fig.axes)
        assert "68% of the RCPTs sent to it" in fig.axes[0].get_title(loc="left")
        plotting.plt.close(fig)


def test_band_intervals_of_counts_stay_at_or_above_zero():
    with plotting.style():
        fig, ax = plotting.figure()
        _, lo, _ = plotting.band(ax, np.arange(2), np.array([[0.0, 5.0], [0.0, 0.0],
                                                             [9.0, 0.0]]), "counts")
        assert (lo >= 0).all()
        plotting.plt.close(fig)
