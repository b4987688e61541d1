"""`amml evaluate`'s report as text: a NAB table and a detection table, one row per category and one pooled."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .event_metrics import EventCounts

if TYPE_CHECKING:
    from .evaluate import Report

NAME_WIDTH = 24


def render(report: Report) -> str:
    profiles = list(report.profiles)
    short = {"standard": "standard", "reward_low_FP_rate": "low FP", "reward_low_FN_rate": "low FN"}
    heads = [short.get(p, p) for p in profiles]
    total = report.groups[-1]
    lines = [
        f"amml evaluate {report.pipeline}: {total.series} series, {total.events.windows} windows, "
        f"detector `{report.detector}`",
        "",
        "NAB score (0: never detecting, 100: every window at its first record, nothing else)",
        f"{'':{NAME_WIDTH}} {'':>7} {'':>7}   {'optimised on these labels':<26}   fixed: {report.fixed_rule}",
        f"{'category':{NAME_WIDTH}} {'series':>7} {'windows':>7}   "
        + " ".join(f"{h:>8}" for h in heads)
        + "   "
        + " ".join(f"{h:>8}" for h in heads),
    ]
    for g in report.groups:
        optimised = " ".join(_num(g.optimised[p].normalised(report.profiles[p]), 8, 1) for p in profiles)
        fixed = " ".join(_num(g.fixed[p].normalised(report.profiles[p]), 8, 1) for p in profiles)
        lines.append(f"{g.name:{NAME_WIDTH}} {g.series:>7} {g.events.windows:>7}   {optimised}   {fixed}")
    chosen = ", ".join(f"{p} {_threshold(report.thresholds[p])}" for p in profiles)
    lines.append(f"thresholds optimised on these labels: {chosen}")
    if None in report.thresholds.values():
        lines.append("(none: no threshold scores better than never detecting)")
    lines.append("")
    lines += [
        f"Detection by {report.fixed_rule}; every flagged record outside a window is a false positive",
        f"{'category':{NAME_WIDTH}} {'found':>9} {'FP rows':>8} {'precision':>9} {'recall':>7} {'F1':>6} "
        f"{'point F1':>8}   mean time to detect",
    ]
    for g in report.groups:
        e = g.events
        found = f"{e.detected_windows}/{e.windows}"
        lines.append(
            f"{g.name:{NAME_WIDTH}} {found:>9} {e.false_positive_rows:>8} {_num(e.precision, 9, 3)} "
            f"{_num(e.recall, 7, 3)} {_num(e.f1, 6, 3)} {_num(e.point_f1, 8, 3)}   {_delay(e)}"
        )
    return "\n".join(lines)


def _num(value: float | None, width: int, digits: int) -> str:
    return f"{'—':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def _threshold(value: float | None) -> str:
    return "none" if value is None else f"{value:.15g}"


def _delay(events: EventCounts) -> str:
    rows, seconds = events.mean_rows_to_detect, events.mean_seconds_to_detect
    if rows is None:
        return "—"
    return f"{rows:.1f} records ({_duration(seconds)})"


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
