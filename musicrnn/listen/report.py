"""The study's results as markdown (printed and written), CSV and a bar chart."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from musicrnn.listen.stats import GOOD, AspectSummary, Identification
from musicrnn.listen.store import ASPECTS

CI_NOTE = (
    "95% CI (ratings) treats every rating as independent; 95% CI (listeners) takes each listener's mean "
    "as one observation (t interval over listeners), which allows for lenient and strict listeners and is "
    "the one to quote. Neither allows for clip effects, and with few ratings a t interval can reach past "
    'the 1-5 scale (it is not clipped). Identification: share of "human or machine?" '
    'answers that were right (Wilson 95% interval); "not sure" is not counted.'
)


def _number(value: float, digits: int = 2) -> str:
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def _interval(low: float, high: float) -> str:
    return "–" if math.isnan(low) else f"[{low:.2f}, {high:.2f}]"


def _percent(value: float) -> str:
    return "–" if math.isnan(value) else f"{100 * value:.0f}%"


def markdown(
    summaries: list[AspectSummary], identifications: list[Identification], *, participants: int, clips: int
) -> str:
    lines = [
        "# Listening study: Average Listener Rating",
        "",
        f"{participants} listener(s) gave {sum(s.ratings for s in summaries if s.aspect == ASPECTS[0])} rating(s); "
        f"{clips} clip(s) in the study. Ratings from 1 (poor) to 5 (excellent).",
        "",
        f"| system | aspect | mean | 95% CI (ratings) | 95% CI (listeners) | ratings | listeners | share ≥ {GOOD} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.system} | {s.aspect} | {_number(s.mean)} | {_interval(s.ci_low, s.ci_high)} | "
            f"{_interval(s.listener_ci_low, s.listener_ci_high)} | {s.ratings} | {s.listeners} | {_percent(s.share_good)} |"
        )
    lines += [
        "",
        "| system | really | answers | identified correctly | 95% CI |",
        "|---|---|---|---|---|",
    ]
    for i in identifications:
        lines.append(
            f"| {i.system} | {'human' if i.human else 'machine'} | {i.answers} | {_percent(i.rate)} | "
            f"{'–' if math.isnan(i.ci_low) else f'[{100 * i.ci_low:.0f}%, {100 * i.ci_high:.0f}%]'} |"
        )
    lines += ["", CI_NOTE, ""]
    return "\n".join(lines)


def write_csv(summaries: list[AspectSummary], identifications: list[Identification], path: str | os.PathLike) -> Path:
    """One row per (system, aspect); the system's identification columns repeat on each of its rows."""
    by_system = {i.system: i for i in identifications}
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "system",
                "human",
                "aspect",
                "mean",
                "ci95_low",
                "ci95_high",
                "listener_ci95_low",
                "listener_ci95_high",
                "ratings",
                "listeners",
                f"share_ge_{GOOD}",
                "identification_answers",
                "identification_rate",
            ]
        )
        for s in summaries:
            i = by_system[s.system]
            writer.writerow(
                [
                    s.system,
                    i.human,
                    s.aspect,
                    s.mean,
                    s.ci_low,
                    s.ci_high,
                    s.listener_ci_low,
                    s.listener_ci_high,
                    s.ratings,
                    s.listeners,
                    s.share_good,
                    i.answers,
                    i.rate,
                ]
            )
    return path


def write_chart(summaries: list[AspectSummary], path: str | os.PathLike) -> Path:
    """Grouped bars: one group per aspect, one bar per system, with the ratings' 95% CI as error bars (the
    listeners' interval is undefined for a single listener, so the chart would often show none)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    systems = list(dict.fromkeys(s.system for s in summaries))
    width = 0.8 / max(len(systems), 1)
    figure, axes = plt.subplots(figsize=(2 + 1.6 * len(ASPECTS), 4))
    for k, system in enumerate(systems):
        rows = {s.aspect: s for s in summaries if s.system == system}
        means = np.array([rows[a].mean for a in ASPECTS])
        errors = np.array(
            [[rows[a].mean - rows[a].ci_low for a in ASPECTS], [rows[a].ci_high - rows[a].mean for a in ASPECTS]]
        )
        x = np.arange(len(ASPECTS)) + (k - (len(systems) - 1) / 2) * width
        axes.bar(x, np.nan_to_num(means), width, yerr=np.nan_to_num(errors), capsize=3, label=system)
    axes.set_xticks(np.arange(len(ASPECTS)), ASPECTS)
    axes.set_ylim(0, 5.5)
    axes.set_yticks(range(1, 6))
    axes.set_ylabel("mean rating (1–5)")
    axes.set_title("Average Listener Rating (error bars: 95% CI of the ratings)")
    axes.legend(loc="upper left", bbox_to_anchor=(1, 1), frameon=False)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
