"""Figures for reports and runbooks: relaysim's one plotting module.

Public names: style, figure, save, save_table, standard_figures, days_axis, mark_events,
shade_outages, zero_visible, zero_label, interval_note, band, errorbars, grouped_bars,
factor_figure, cdf, cdf_on_grid, per_hour, rebin, DAY.

Contract:
- Draw inside style(), i.e. matplotlib.style.context("sim.reports.report")
  (sim/reports/report.mplstyle):
  Okabe-Ito colour-blind-safe colours, constrained layout, readable fonts. The backend is Agg;
  nothing is shown on screen.
- save(fig, stem) writes stem.png and stem.svg atomically (sim.results.write_atomic) with
  reproducible bytes (no software or date metadata, fixed svg.hashsalt): the same figure gives
  the same files. It closes the figure and returns the two paths. save_table(stem, columns)
  writes stem.csv, the numbers behind a figure.
- Event labels (mark_events) never overprint each other, run past the plot's edge or sit under
  the legend: save() places them once the layout is final, stacking a label below the one it
  would overlap and right-aligning it at the right edge.
- Time axes are in days since the start of the run; counts per sample interval are shown per
  hour (per_hour). Relay outages are shaded (shade_outages). A line that sits on zero stays
  visible above the axis (zero_visible) and says so in its legend entry (zero_label).
- band, errorbars and grouped_bars take replications with seeds on the first axis and draw the
  mean with its 95 % t-interval (sim.studies.statistics.mean_ci), clipped to `bounds` (default
  (0, None): counts and times are never negative); one seed: no interval. interval_note(fig,
  n) writes how in the figure.
- factor_figure(stem, ylabel, panels, title) draws a sweep's figure: one panel per varied key,
  its values on x (as written, evenly spaced), one line of means with 95 % intervals per
  combination of the other keys' values; panels are (key, values, {label: (mean, lo, hi)},
  legend title).
- standard_figures(timeseries, qshape, delay_cdf, events, title, outdir, outages) draws one
  run's four standard figures (queue sizes, qshape age buckets, delivery-delay CDF, relay load)
  into outdir and returns the files written. When the first outage (or, without outages, the
  first event) and the hours after it are short against the run, the queue and relay-load
  figures get a zoom panel in hours since it began.
Errors: ValueError when a table's columns differ in length.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.style  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, MultipleLocator  # noqa: E402

from sim.results import QSHAPE_LABELS, write_atomic  # noqa: E402
from sim.studies.statistics import ci_method, mean_ci  # noqa: E402

DAY, HOUR = 86400.0, 3600.0
_SAVE_RC = {"svg.hashsalt": "relaysim", "svg.fonttype": "path", "savefig.dpi": 150}
_EVENT = "relaysim-event-label"  # gid of mark_events' labels, placed by save()
COUNTS = (0, None)  # the range of a count or a time: intervals are clipped there


def style():
    """The report style as a context manager."""
    return matplotlib.style.context("sim.reports.report")


def figure(rows: int = 1, cols: int = 1, *, sharex: bool = True, height: float | None = None,
           width: float | None = None, height_ratios: Sequence[float] | None = None,
           squeeze: bool = True):
    """(fig, axes) in the report style's size; axes is an array when rows * cols > 1 (always
    a 2-D array with squeeze=False)."""
    w, h = plt.rcParams["figure.figsize"]
    size = (width or w, height or (h if rows == 1 else 2.6 * rows + 0.8))
    return plt.subplots(rows, cols, sharex=sharex, figsize=size, squeeze=squeeze,
                        gridspec_kw={"height_ratios": height_ratios} if height_ratios else None)


def save(fig, path_stem: str | Path) -> list[Path]:
    """Write path_stem.png and path_stem.svg (reproducible bytes, atomically); close fig."""
    stem = Path(path_stem)
    paths = []
    _place_event_labels(fig)
    with matplotlib.rc_context(_SAVE_RC):
        for ext, meta in (("png", {"Software": None}), ("svg", {"Date": None})):
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, metadata=meta)
            path = stem.with_name(f"{stem.name}.{ext}")
            write_atomic(path, buf.getvalue())
            paths.append(path)
    plt.close(fig)
    return paths


def save_table(path_stem: str | Path, columns: Mapping[str, Sequence]) -> Path:
    """Write path_stem.csv: one column per entry, header first; numbers in compact form."""
    cols = {k: list(v) if not isinstance(v, np.ndarray) else v.tolist() for k, v in
            columns.items()}
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise ValueError(f"table {path_stem}: columns of different lengths "
                         f"{ {k: len(v) for k, v in cols.items()} }")
    lines = [",".join(_cell(k) for k in cols)]
    for row in zip(*cols.values(), strict=True):
        lines.append(",".join(_cell(v) for v in row))
    path = Path(path_stem).with_suffix(".csv")
    write_atomic(path, "\n".join(lines) + "\n")
    return path


def _cell(v) -> str:
    if isinstance(v, str):
        return f'"{v}"' if ("," in v or '"' in v) else v
    v = float(v)
    if np.isnan(v):
        return ""
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.6g}"


# --- axes helpers ---------------------------------------------------------------------------
def days_axis(ax, span_days: float | None = None, label: str = "time since start (days)"):
    """Days on the x axis: ticks every day, or every week beyond three weeks."""
    if span_days is None:
        lo, hi = ax.get_xlim()
        span_days = hi - lo
    major = 7 if span_days > 21 else (2 if span_days > 10 else (1 if span_days >= 2 else None))
    if major:
        ax.xaxis.set_major_locator(MultipleLocator(major))
        if major > 1:
            ax.xaxis.set_minor_locator(MultipleLocator(1))
    ax.set_xlabel(label)


def mark_events(ax, events: Sequence[tuple[float, str]], *, label_axes=True, x_scale=DAY):
    """Dashed vertical lines at event times (seconds), labelled at the top of the axes (save()
    moves the labels apart; module contract)."""
    for t, text in events:
        x = t / x_scale
        ax.axvline(x, color="0.35", linestyle="--", linewidth=1.0, zorder=1)
        if label_axes and text:
            ann = ax.annotate(text, xy=(x, 1.0), xycoords=("data", "axes fraction"),
                              xytext=(3, -3), textcoords="offset points", ha="left",
                              va="top", fontsize=8.5, color="0.25", rotation=0,
                              annotation_clip=False, gid=_EVENT, zorder=5,
                              bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                                    "alpha": 0.85})
            ann.set_in_layout(False)


def _place_event_labels(fig) -> None:
    """Each axes' event labels, left to right, in the first row from the top where the label
    fits inside the axes and overlaps neither an earlier label nor a legend."""
    axes = [(ax, sorted((a for a in ax.texts if a.get_gid() == _EVENT),
                        key=lambda a: a.xy[0])) for ax in fig.axes]
    if not any(anns for _, anns in axes):
        return
    fig.canvas.draw()  # the final layout: labels are out of it, so placing them keeps it
    r = fig.canvas.get_renderer()
    legends = [lg.get_window_extent(r) for lg in fig.legends]
    for ax, anns in axes:
        box = ax.get_window_extent(r)
        taken = legends + ([ax.get_legend().get_window_extent(r)] if ax.get_legend() else [])
        for ann in anns:
            taken.append(_free_spot(ax, ann, r, box, taken))


def _free_spot(ax, ann, r, box, taken):
    """Move ann to the first free place (rows from the top; right of its line, else left of
    it) and return its box; nowhere free: the first row, on the side with more room."""
    step = ann.get_window_extent(r).height * 72 / ax.figure.dpi + 2
    for row in range(12):
        for dx, ha in ((3, "left"), (-3, "right")):
            ann.xyann = (dx, -3 - row * step)
            ann.set_ha(ha)
            bb = ann.get_window_extent(r)
            if (bb.x0 >= box.x0 and bb.x1 <= box.x1 and bb.y0 >= box.y0
                    and not any(bb.overlaps(o) for o in taken)):
                return bb
    x = ax.transData.transform((ann.xy[0], 0))[0]  # the event's line
    ann.xyann = (3, -3) if x - box.x0 < box.x1 - x else (-3, -3)
    ann.set_ha("left" if ann.xyann[0] > 0 else "right")
    return ann.get_window_extent(r)


def shade_outages(ax, outages: Sequence[tuple[float, float]], *, x_scale=DAY,
                  label: str | None = "relay down (refuses connections)", zorder=0.5):
    """Grey spans over the relay's outages, (start, end) in seconds; one legend entry."""
    for k, (start, end) in enumerate(outages):
        ax.axvspan(start / x_scale, end / x_scale, color="0.45", alpha=0.2, linewidth=0,
                   zorder=zorder, label=label if k == 0 else None)


def zero_visible(ax) -> None:
    """Counts from 0, with a sliver below it so that a line on zero is not hidden by the
    axis."""
    top = ax.get_ylim()[1]
    ax.set_ylim(-0.015 * top, top)


def zero_label(label: str, values, where: str = "throughout", top: float | None = None,
               unit: str = "") -> str:
    """The label, with ' (0 throughout)' when every value is 0, or ' (at most N unit)' when
    the line stays below 1 % of `top`: a reader sees why it is flat at the bottom."""
    peak = float(np.nanmax(np.asarray(values, dtype=float))) if np.size(values) else 0.0
    if peak == 0:
        return f"{label} (0 {where})"
    if top is not None and peak < 0.01 * top:
        return f"{label} (at most {peak:,.0f}{' ' + unit if unit else ''})" if peak >= 10 else \
            f"{label} (at most {peak:.2g}{' ' + unit if unit else ''})"
    return label


def interval_note(fig, n: int, bounds=COUNTS, what: str = "shaded bands",
                  before: Sequence[str] = ()) -> None:
    """Say in the figure how its intervals were computed (bottom right, small), after the
    lines `before` (notes a reader needs to read the figure)."""
    how = f"{what}: {ci_method(n, bounds)}" if n > 1 else ci_method(n, bounds)
    _note(fig, "\n".join([*before, how]))


def _note(fig, text: str) -> None:
    """Small grey text at the bottom right, inside the layout."""
    fig.supxlabel(text, x=0.99, ha="right", fontsize=8.5, color="0.3", multialignment="right")


def thousands(ax, axis: str = "y"):
    """Tick labels with thousands separators."""
    fmt = FuncFormatter(lambda v, _: f"{v:,.0f}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def plain_log(ax, axis: str = "y"):
    """Log-axis tick labels as plain numbers (0.5, 2, 1,000) instead of 5 x 10^-1."""
    a = ax.yaxis if axis == "y" else ax.xaxis
    fmt = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:g}")
    a.set_major_formatter(fmt)
    a.set_minor_formatter(FuncFormatter(
        lambda v, _: fmt(v) if f"{v:.1e}"[0] in "25" else ""))


def per_hour(counts: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Counts per sample interval as a rate per hour."""
    dt = float(t_s[1] - t_s[0]) if len(t_s) > 1 else 3600.0
    return np.asarray(counts, dtype=float) * (3600.0 / dt)


def rebin(t_s: np.ndarray, counts: np.ndarray, width_s: float, origin: float | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """Per-interval counts (last axis) summed into bins of width_s, as (bin ends in s, rate per
    hour). With `origin` (a sample time, e.g. a change) one bin ends exactly there, so no bin
    straddles it. Leading and trailing partial bins are dropped."""
    counts = np.asarray(counts, dtype=float)
    dt = float(t_s[1] - t_s[0]) if len(t_s) > 1 else width_s
    k = max(1, int(round(width_s / dt)))
    j0 = 0 if origin is None else int(round((origin - t_s[0]) / dt)) % k
    n = (counts.shape[-1] - 1 - j0) // k  # sample 0 holds events at time 0 only
    body = counts[..., 1 + j0: 1 + j0 + n * k].reshape(*counts.shape[:-1], n, k).sum(axis=-1)
    return np.asarray(t_s)[j0 + k: j0 + n * k + 1: k], body * (3600.0 / (k * dt))


# --- replicated data ------------------------------------------------------------------------
def band(ax, x, runs, label: str | None, *, color=None, linestyle="-", alpha=0.22,
         linewidth=None, steps: bool = False, ci: bool = True, bounds=COUNTS, zorder=None):
    """Mean over seeds (first axis of `runs`) as a line, its 95 % interval as a band (unless
    ci=False). steps=True draws counts per interval as steps ending at x. Returns (mean, lo,
    hi)."""
    m, lo, hi = mean_ci(np.asarray(runs, dtype=float), bounds)
    (line,) = ax.plot(x, m, label=label, color=color, linestyle=linestyle, linewidth=linewidth,
                      drawstyle="steps-pre" if steps else "default", zorder=zorder)
    if ci and not np.all(np.isnan(lo)):
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=alpha, linewidth=0,
                        step="pre" if steps else None)
    return m, lo, hi


def errorbars(ax, x, runs, label: str, *, color=None, marker="o", linestyle="-",
              bounds=COUNTS):
    """Points at x with 95 % intervals; `runs` has shape (seeds, len(x)). Returns (m, lo, hi)."""
    m, lo, hi = mean_ci(np.asarray(runs, dtype=float), bounds)
    err = None if np.all(np.isnan(lo)) else np.vstack([m - lo, hi - m])
    ax.errorbar(x, m, yerr=err, label=label, color=color, marker=marker, linestyle=linestyle)
    return m, lo, hi


def grouped_bars(ax, groups: Sequence[str], series: Mapping[str, np.ndarray], *,
                 colors: Sequence | None = None, values: str | None = None, bounds=COUNTS):
    """Bars per group (x) and series (colour) on a linear axis. series[label] has shape
    (seeds, len(groups)). values: a format for each bar's mean written above it (a bar of 0
    then still shows its value). Returns {label: (mean, lo, hi)}."""
    n = len(series)
    width = 0.8 / max(n, 1)
    x = np.arange(len(groups))
    out = {}
    for i, (label, runs) in enumerate(series.items()):
        m, lo, hi = mean_ci(np.asarray(runs, dtype=float), bounds)
        err = None if np.all(np.isnan(lo)) else np.vstack([m - lo, hi - m])
        bars = ax.bar(x + (i - (n - 1) / 2) * width, m, width, yerr=err, label=label,
                      color=None if colors is None else colors[i], error_kw={"elinewidth": 1})
        if values:
            ax.bar_label(bars, [f"{v:{values}}" for v in m], padding=2, fontsize=7.5,
                         label_type="edge")
        out[label] = (m, lo, hi)
    ax.set_xticks(x, groups)
    ax.grid(axis="x", visible=False)
    return out


def factor_figure(path_stem: str | Path, ylabel: str, panels: Sequence[tuple],
                  title: str = "", note: str = "") -> list[Path]:
    """A sweep's figure against each varied key (module contract), with `note` (how the
    intervals were computed) at the bottom right; returns the files."""
    with style():
        w, _ = plt.rcParams["figure.figsize"]
        fig, axes = figure(1, len(panels), sharex=False, squeeze=False,
                           width=max(w, 4.2 * len(panels)))
        for ax, (key, values, lines, legend) in zip(axes[0], panels, strict=True):
            x = np.arange(len(values))
            for label, (m, lo, hi) in lines.items():
                err = None if np.all(np.isnan(lo)) else np.nan_to_num(np.vstack([m - lo, hi - m]))
                ax.errorbar(x, m, yerr=err, label=label or None, marker="o", capsize=3)
            ax.set_xticks(x, values)
            ax.set_xlabel(key)
            if len(lines) > 1:
                ax.legend(title=legend or None, fontsize="small", title_fontsize="small",
                          loc="best")
        axes[0][0].set_ylabel(ylabel)
        if title:
            fig.suptitle(title)
        if note:
            _note(fig, note)
        return save(fig, path_stem)


def band_columns(prefix: str, bands: Mapping[str, tuple]) -> dict:
    """CSV columns '<prefix>[<label>] mean/lo/hi' for bands returned by band/errorbars."""
    out = {}
    for label, (m, lo, hi) in bands.items():
        key = f"{prefix}[{label}]"
        out[f"{key} mean"], out[f"{key} lo"], out[f"{key} hi"] = m, lo, hi
    return out


def cdf_on_grid(delay_cdf: tuple[np.ndarray, np.ndarray], grid: np.ndarray) -> np.ndarray:
    """A run's delay CDF (Results.delay_cdf) evaluated on a common grid of delays (s)."""
    edges, share = (np.asarray(a, dtype=float) for a in delay_cdf)
    if edges.size == 0:
        return np.full(np.shape(grid), np.nan)
    return np.interp(grid, edges, share, left=share[0], right=share[-1])


def cdf(ax, delay_cdf: tuple[np.ndarray, np.ndarray], label: str, **kw):
    """One delivery-delay CDF on a log time axis (delays below 1 ms are drawn at 1 ms)."""
    edges, share = (np.asarray(a, dtype=float) for a in delay_cdf)
    if edges.size:
        ax.step(edges, 100 * share, where="post", label=label, **kw)
    delay_axis(ax, 3 * edges[-1] if edges.size else None)


def delay_axis(ax, xmax: float | None = None):
    """Log delay axis with labels in s, min, h and days (up to xmax s); share delivered in %."""
    ax.set_xscale("log")
    ticks = [1e-2, 1, 10, 60, 600, 3600, 6 * 3600, DAY, 5 * DAY, 30 * DAY]
    names = ["10 ms", "1 s", "10 s", "1 min", "10 min", "1 h", "6 h", "1 d", "5 d", "30 d"]
    keep = [i for i, v in enumerate(ticks) if xmax is None or v <= xmax]
    ax.set_xticks([ticks[i] for i in keep], [names[i] for i in keep])
    if xmax is not None:
        ax.set_xlim(5e-3, xmax)
    ax.set_ylim(0, 101)
    ax.set_ylabel("share delivered within (%)")
    ax.set_xlabel("delivery delay, arrival at upstream to relay accepted (log scale)")


# --- one run's standard figures -------------------------------------------------------------
def standard_figures(timeseries, qshape, delay_cdf, events, title, outdir,
                     outages: Sequence[tuple[float, float]] = ()) -> list[Path]:
    """Queue sizes, qshape age buckets, delivery-delay CDF and relay load of one run, written to
    outdir as queue, qshape, delay_cdf and relay_load (.png and .svg); outages are (start, end)
    in seconds. Returns the paths."""
    ts = {k: np.asarray(v, dtype=float) for k, v in timeseries.items()}
    outdir = Path(outdir)
    frame = _Frame(ts["t_s"], list(events), list(outages))
    paths: list[Path] = []
    with style():
        paths += save(_queue_figure(ts, frame, title), outdir / "queue")
        paths += save(_qshape_figure(np.asarray(qshape), frame, title), outdir / "qshape")
        fig, ax = figure()
        fig.suptitle(title)
        cdf(ax, delay_cdf, "delivered recipients")
        ax.set_title(_delay_finding(delay_cdf))
        if ax.get_lines():
            ax.legend(loc="lower right")
        paths += save(fig, outdir / "delay_cdf")
        paths += save(_load_figure(ts, frame, title), outdir / "relay_load")
    return paths


class _Frame(NamedTuple):
    """The time frame shared by the over-time standard figures."""
    t_s: np.ndarray
    events: list
    outages: list

    @property
    def days(self):
        return self.t_s / DAY

    @property
    def span(self) -> float:
        return float(self.days[-1] - self.days[0]) if self.t_s.size else 1.0

    def zoom(self) -> tuple[float, float, float] | None:
        """(origin, lo, hi) in s of a zoom on the first outage (else the first event) and the
        hours after it, or None when it is not short against the run or lies outside it."""
        if self.outages:
            start, end = self.outages[0]
        elif self.events:
            start = end = self.events[0][0]
        else:
            return None
        lo = start - max(HOUR, 0.5 * (end - start))
        hi = end + max(6 * HOUR, 2 * (end - start))
        if not self.t_s.size or hi - lo > self.span * DAY / 3 or start >= self.t_s[-1]:
            return None
        return start, max(lo, float(self.t_s[0])), min(hi, float(self.t_s[-1]))



def _over_time(frame: _Frame, title: str, draw, ylabel: str, legend_loc=None):
    """A figure of `draw(ax, x, keep)` over the whole run in days and, when frame.zoom() says
    so, a second panel in hours around the first outage or event."""
    zoom = frame.zoom()
    fig, axes = figure(2 if zoom else 1, 1, sharex=False, squeeze=False,
                       height=8.6 if zoom else None, height_ratios=(1.25, 1) if zoom else None)
    fig.suptitle(title)
    ax = axes[0, 0]
    draw(ax, frame.days, np.ones(frame.t_s.size, dtype=bool))
    _time_panel(ax, ylabel, frame.span, frame.events, frame.outages, DAY)
    days_axis(ax, frame.span)
    if legend_loc:
        ax.legend(**legend_loc)
    if zoom:
        origin, lo, hi = zoom
        z = axes[1, 0]
        keep = (frame.t_s >= lo) & (frame.t_s <= hi)
        draw(z, (frame.t_s[keep] - origin) / HOUR, keep)
        z.set_xlim((lo - origin) / HOUR, (hi - origin) / HOUR)
        hours = (hi - lo) / HOUR
        z.xaxis.set_major_locator(MultipleLocator(1 if hours <= 12 else 3 if hours <= 36 else 6))
        _time_panel(z, ylabel, frame.span, [(t - origin, text) for t, text in frame.events
                                             if lo <= t <= hi],
                    [(s - origin, e - origin) for s, e in frame.outages], HOUR)
        what = "the relay outage" if frame.outages else "the first change"
        z.set_title(f"Zoom: the hours around {what} (day {origin / DAY:.2f})")
        z.set_xlabel(f"hours since {what} began" if frame.outages else f"hours since {what}")
    return fig


def _time_panel(ax, ylabel: str, span, events, outages, x_scale, shade_z=0.5) -> None:
    """The shared frame of the standard over-time panels: counts from 0 (a line on 0 stays
    visible), events and outages."""
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    zero_visible(ax)
    thousands(ax)
    shade_outages(ax, outages, x_scale=x_scale, zorder=shade_z)
    mark_events(ax, events, x_scale=x_scale)


def _queue_figure(ts, frame, title):
    queued = ts["deferred"] + ts["active"]

    def draw(ax, x, keep):
        ax.plot(x, ts["deferred"][keep], label=zero_label("deferred queue (messages)",
                                                          ts["deferred"]))
        ax.plot(x, ts["active"][keep], label=zero_label("active queue (messages)",
                                                        ts["active"]))
        if "deferred_recipients" in ts and np.any(ts["deferred_recipients"] != ts["deferred"]):
            ax.plot(x, ts["deferred_recipients"][keep], linestyle=":",
                    label="deferred recipients")

    fig = _over_time(frame, title, draw, "messages at the upstream", {"loc": "best"})
    if queued.size:
        j = int(np.argmax(queued))
        fig.axes[0].set_title(f"Upstream queue (deferred + active) peaks at {queued[j]:,.0f} "
                              f"messages on day {frame.days[j]:.1f}; {queued[-1]:,.0f} queued "
                              f"at the end")
    return fig


def _qshape_figure(qshape, frame, title):
    fig, ax = figure()
    fig.suptitle(title)
    days = frame.days
    colors = plt.get_cmap("cividis")(np.linspace(0.05, 0.95, qshape.shape[1]))
    labels = [f"< {QSHAPE_LABELS[0]} min"] + [
        f"{QSHAPE_LABELS[i - 1]}-{QSHAPE_LABELS[i]} min" for i in range(1, len(QSHAPE_LABELS) - 1)
    ] + [f"> {QSHAPE_LABELS[-2]} min"]
    ax.stackplot(days, qshape.T, labels=labels, colors=colors, linewidth=0)
    total = qshape.sum(axis=1)
    if total.size and total.max() > 0:
        j = int(np.argmax(total))
        ax.set_title(f"At its peak (day {days[j]:.1f}) {qshape[j, -1] / total[j]:.0%} of the "
                     f"deferred queue is older than {QSHAPE_LABELS[-2]} min (21 h)")
    else:
        ax.set_title("The deferred queue stays empty")
    _time_panel(ax, "deferred messages", frame.span, frame.events, frame.outages, DAY,
                shade_z=2)  # over the stack, or the stack hides it
    days_axis(ax, frame.span)
    handles, labs = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labs[::-1], title="age in queue", loc="upper left",
              bbox_to_anchor=(1.01, 1.0), fontsize=8.5)
    return fig


def _delay_finding(delay_cdf) -> str:
    edges, share = (np.asarray(a, dtype=float) for a in delay_cdf)
    if edges.size == 0 or share[-1] == 0:
        return "No mail was delivered"
    i = min(int(np.searchsorted(share, 0.95 * share[-1])), edges.size - 1)
    return f"95 % of delivered mail reached the relay within {duration_text(edges[i])}"


def _load_figure(ts, frame, title):
    t = ts["t_s"]
    sessions = per_hour(ts["relay_sessions"], t)
    r4, r5 = per_hour(ts["rejects_4xx"], t), per_hour(ts["rejects_5xx"], t)

    def draw(ax, x, keep):  # a sample counts the interval that ends at it: steps
        for values, label, ls in ((sessions, "SMTP sessions from the upstream", "-"),
                                  (r4, "RCPTs rejected with 4xx (retried)", "--"),
                                  (r5, "RCPTs rejected with 5xx (bounced)", "--")):
            # rejects dashed: where nearly every session is rejected, the sessions show through
            ax.plot(x, values[keep], drawstyle="steps-pre", linestyle=ls,
                    label=zero_label(label, values))

    fig = _over_time(frame, title, draw, "per hour", {"loc": "best"})
    if sessions.size:
        fig.axes[0].set_title(f"Relay load peaks at {sessions.max():,.0f} sessions/h; "
                              + _reject_share(ts))
    return fig


def _reject_share(ts) -> str:
    """Rejected RCPTs as a share of all RCPTs the upstream sent (accepted + rejected), one
    unit on both sides."""
    rejected = float(np.sum(ts["rejects_4xx"]) + np.sum(ts["rejects_5xx"]))
    accepted = float(ts["delivered"][-1] - ts["delivered"][0]) if "delivered" in ts else 0.0
    if rejected + accepted == 0:
        return "no RCPT reached the relay"
    return f"it rejected {rejected / (rejected + accepted):.0%} of the RCPTs sent to it"


def duration_text(s: float) -> str:
    """A delay in the largest unit that keeps it readable."""
    for unit, size in (("d", DAY), ("h", 3600.0), ("min", 60.0)):
        if s >= size:
            return f"{s / size:.1f} {unit}"
    return f"{s:.2g} s"
