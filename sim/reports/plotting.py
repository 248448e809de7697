"""Figures for reports and runbooks: relaysim's one plotting module.

Public names: style, figure, save, save_table, standard_figures, days_axis, mark_events, band,
errorbars, grouped_bars, factor_figure, cdf, cdf_on_grid, per_hour, DAY.

Contract:
- Draw inside style(), i.e. matplotlib.style.context("sim.reports.report")
  (sim/reports/report.mplstyle):
  Okabe-Ito colour-blind-safe colours, constrained layout, readable fonts. The backend is Agg;
  nothing is shown on screen.
- save(fig, stem) writes stem.png and stem.svg atomically (sim.results.write_atomic) with
  reproducible bytes (no software or date metadata, fixed svg.hashsalt): the same figure gives
  the same files. It closes the figure and returns the two paths. save_table(stem, columns)
  writes stem.csv, the numbers behind a figure.
- Time axes are in days since the start of the run; counts per sample interval are shown per
  hour (per_hour).
- band, errorbars and grouped_bars take replications with seeds on the first axis and draw the
  mean with its 95 % t-interval (sim.studies.statistics.mean_ci); one seed: no interval.
- factor_figure(stem, ylabel, panels, title) draws a sweep's figure: one panel per varied key,
  its values on x (as written, evenly spaced), one line of means with 95 % intervals per
  combination of the other keys' values; panels are (key, values, {label: (mean, lo, hi)},
  legend title).
- standard_figures(timeseries, qshape, delay_cdf, events, title, outdir) draws one run's four
  standard figures (queue sizes, qshape age buckets, delivery-delay CDF, relay load) into outdir
  and returns the files written.
Errors: ValueError when a table's columns differ in length.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.style  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, MultipleLocator  # noqa: E402

from sim.results import QSHAPE_LABELS, write_atomic  # noqa: E402
from sim.studies.statistics import mean_ci  # noqa: E402

DAY = 86400.0
_SAVE_RC = {"svg.hashsalt": "relaysim", "svg.fonttype": "path", "savefig.dpi": 150}


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
    """Dashed vertical lines at event times (seconds), labelled at the top of the axes."""
    for t, text in events:
        x = t / x_scale
        ax.axvline(x, color="0.35", linestyle="--", linewidth=1.0, zorder=1)
        if label_axes and text:
            ax.annotate(text, xy=(x, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(3, -3), textcoords="offset points", ha="left", va="top",
                        fontsize=8.5, color="0.25", rotation=0,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                              "alpha": 0.8})


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


def rebin(t_s: np.ndarray, counts: np.ndarray, width_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-interval counts (last axis) summed into bins of width_s, as (bin ends in s, rate per
    hour). A trailing partial bin is dropped."""
    counts = np.asarray(counts, dtype=float)
    dt = float(t_s[1] - t_s[0]) if len(t_s) > 1 else width_s
    k = max(1, int(round(width_s / dt)))
    n = (counts.shape[-1] - 1) // k  # sample 0 holds events at time 0 only
    body = counts[..., 1: 1 + n * k].reshape(*counts.shape[:-1], n, k).sum(axis=-1)
    return np.asarray(t_s)[k: n * k + 1: k], body * (3600.0 / (k * dt))


# --- replicated data ------------------------------------------------------------------------
def band(ax, x, runs, label: str | None, *, color=None, linestyle="-", alpha=0.22,
         linewidth=None, steps: bool = False, ci: bool = True):
    """Mean over seeds (first axis of `runs`) as a line, its 95 % interval as a band (unless
    ci=False). steps=True draws counts per interval as steps ending at x. Returns (mean, lo,
    hi)."""
    m, lo, hi = mean_ci(np.asarray(runs, dtype=float))
    (line,) = ax.plot(x, m, label=label, color=color, linestyle=linestyle, linewidth=linewidth,
                      drawstyle="steps-pre" if steps else "default")
    if ci and not np.all(np.isnan(lo)):
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=alpha, linewidth=0,
                        step="pre" if steps else None)
    return m, lo, hi


def errorbars(ax, x, runs, label: str, *, color=None, marker="o", linestyle="-"):
    """Points at x with 95 % intervals; `runs` has shape (seeds, len(x)). Returns (m, lo, hi)."""
    m, lo, hi = mean_ci(np.asarray(runs, dtype=float))
    err = None if np.all(np.isnan(lo)) else np.vstack([m - lo, hi - m])
    ax.errorbar(x, m, yerr=err, label=label, color=color, marker=marker, linestyle=linestyle)
    return m, lo, hi


def grouped_bars(ax, groups: Sequence[str], series: Mapping[str, np.ndarray], *,
                 colors: Sequence | None = None):
    """Bars per group (x) and series (colour). series[label] has shape (seeds, len(groups)).
    Returns {label: (mean, lo, hi)}."""
    n = len(series)
    width = 0.8 / max(n, 1)
    x = np.arange(len(groups))
    out = {}
    for i, (label, runs) in enumerate(series.items()):
        m, lo, hi = mean_ci(np.asarray(runs, dtype=float))
        err = None if np.all(np.isnan(lo)) else np.vstack([m - lo, hi - m])
        ax.bar(x + (i - (n - 1) / 2) * width, m, width, yerr=err, label=label,
               color=None if colors is None else colors[i], error_kw={"elinewidth": 1})
        out[label] = (m, lo, hi)
    ax.set_xticks(x, groups)
    ax.grid(axis="x", visible=False)
    return out


def factor_figure(path_stem: str | Path, ylabel: str, panels: Sequence[tuple],
                  title: str = "") -> list[Path]:
    """A sweep's figure against each varied key (module contract); returns the files."""
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
def standard_figures(timeseries, qshape, delay_cdf, events, title, outdir) -> list[Path]:
    """Queue sizes, qshape age buckets, delivery-delay CDF and relay load of one run, written to
    outdir as queue, qshape, delay_cdf and relay_load (.png and .svg). Returns the paths."""
    ts = {k: np.asarray(v, dtype=float) for k, v in timeseries.items()}
    outdir = Path(outdir)
    days = ts["t_s"] / DAY
    span = float(days[-1] - days[0]) if days.size else 1.0
    paths: list[Path] = []
    with style():
        paths += save(_queue_figure(ts, days, span, events, title), outdir / "queue")
        paths += save(_qshape_figure(np.asarray(qshape), days, span, events, title),
                      outdir / "qshape")
        fig, ax = figure()
        fig.suptitle(title)
        cdf(ax, delay_cdf, "delivered recipients")
        ax.set_title(_delay_finding(delay_cdf))
        if ax.get_lines():
            ax.legend(loc="lower right")
        paths += save(fig, outdir / "delay_cdf")
        paths += save(_load_figure(ts, days, span, events, title), outdir / "relay_load")
    return paths


def _queue_figure(ts, days, span, events, title):
    fig, ax = figure()
    fig.suptitle(title)
    queued = ts["deferred"] + ts["active"]
    ax.plot(days, ts["deferred"], label="deferred queue (messages)")
    ax.plot(days, ts["active"], label="active queue (messages)")
    if "deferred_recipients" in ts and np.any(ts["deferred_recipients"] != ts["deferred"]):
        ax.plot(days, ts["deferred_recipients"], linestyle=":",
                label="deferred recipients")
    if queued.size:
        j = int(np.argmax(queued))
        ax.set_title(f"Upstream queue peaks at {queued[j]:,.0f} messages on day {days[j]:.1f}; "
                     f"{queued[-1]:,.0f} queued at the end")
    _time_panel(ax, "messages at the upstream", span, events)
    ax.legend(loc="upper left", bbox_to_anchor=(0, 0.9))
    return fig


def _time_panel(ax, ylabel: str, span, events) -> None:
    """The shared frame of the standard over-time figures: counts from 0, days, events."""
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    thousands(ax)
    days_axis(ax, span)
    mark_events(ax, events)


def _qshape_figure(qshape, days, span, events, title):
    fig, ax = figure()
    fig.suptitle(title)
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
    _time_panel(ax, "deferred messages", span, events)
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


def _load_figure(ts, days, span, events, title):
    fig, ax = figure()
    fig.suptitle(title)
    t = ts["t_s"]
    sessions = per_hour(ts["relay_sessions"], t)
    r4, r5 = per_hour(ts["rejects_4xx"], t), per_hour(ts["rejects_5xx"], t)
    ax.plot(days, sessions, label="SMTP sessions from the upstream")
    ax.plot(days, r4, label="RCPTs rejected with 4xx (retried)")
    ax.plot(days, r5, label="RCPTs rejected with 5xx (bounced)")
    if sessions.size:
        tot = r4 + r5
        share = tot.sum() / max(sessions.sum(), 1)
        ax.set_title(f"Relay load peaks at {sessions.max():,.0f} sessions/h; rejected RCPTs "
                     f"are {share:.0%} of all sessions")
    _time_panel(ax, "per hour", span, events)
    ax.legend(loc="upper left", bbox_to_anchor=(0, 0.9))
    return fig


def duration_text(s: float) -> str:
    """A delay in the largest unit that keeps it readable."""
    for unit, size in (("d", DAY), ("h", 3600.0), ("min", 60.0)):
        if s >= size:
            return f"{s / size:.1f} {unit}"
    return f"{s:.2g} s"
