"""The Average Listener Rating and its companions, per system and aspect.

Two 95% confidence intervals are given for each mean, because the ratings are not independent: one
listener rates many clips, and a lenient listener rates them all high.

- `ci_low`/`ci_high` (ratings): the t interval that treats every rating as an independent draw. It is too
  narrow when listeners differ from one another.
- `listener_ci_low`/`listener_ci_high` (listeners): each listener's mean rating of the system counts as one
  observation, and the t interval is taken over listeners (n = listeners). It allows for listener
  effects; it is undefined with one listener.

Neither allows for clip effects (a system judged on a few clips); a mixed model with random listener and
clip intercepts would. The identification rate is the share of "human or machine?" answers that were
right, with a Wilson 95% interval; "not sure" answers are not counted.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from scipy import stats

from musicrnn.listen.store import ASPECTS, Rating
from musicrnn.listen.study import Study

GOOD = 4  # "share >= 4": the ratings of 4 or 5 on the 1-5 scale


@dataclass(frozen=True)
class AspectSummary:
    system: str
    aspect: str
    mean: float
    ci_low: float
    ci_high: float
    listener_ci_low: float
    listener_ci_high: float
    ratings: int
    listeners: int
    share_good: float  # share of ratings >= GOOD


@dataclass(frozen=True)
class Identification:
    system: str
    human: bool
    answers: int
    correct: int
    rate: float
    ci_low: float
    ci_high: float


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) with the t interval mean ± t(n-1) · s / √n; the bounds are NaN for n < 2."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf((1 + confidence) / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def summarize(study: Study, ratings: list[Rating]) -> list[AspectSummary]:
    """One row per (system, aspect), systems in the study's order; a system nobody rated yet has NaNs."""
    system_of = {clip.id: clip.system for clip in study.clips}
    by_system: dict[str, list[Rating]] = defaultdict(list)
    for rating in ratings:
        if rating.clip_id in system_of:  # the server stores only the study's clips; be safe with an edited study.json
            by_system[system_of[rating.clip_id]].append(rating)
    rows = []
    for system in study.systems:
        rated = by_system[system.name]
        for aspect in ASPECTS:
            scores = np.array([r.score(aspect) for r in rated], dtype=np.float64)
            per_listener: dict[str, list[int]] = defaultdict(list)
            for r in rated:
                per_listener[r.participant_id].append(r.score(aspect))
            mean, low, high = mean_ci(scores)
            _, listener_low, listener_high = mean_ci([np.mean(v) for v in per_listener.values()])
            rows.append(
                AspectSummary(
                    system=system.name,
                    aspect=aspect,
                    mean=mean,
                    ci_low=low,
                    ci_high=high,
                    listener_ci_low=listener_low,
                    listener_ci_high=listener_high,
                    ratings=len(scores),
                    listeners=len(per_listener),
                    share_good=float((scores >= GOOD).mean()) if len(scores) else math.nan,
                )
            )
    return rows


def identification(study: Study, ratings: list[Rating]) -> list[Identification]:
    """Per system: how often listeners who answered "human or machine?" got it right."""
    system_of = {clip.id: clip.system for clip in study.clips}
    rows = []
    for system in study.systems:
        truth = "human" if system.human else "machine"
        answers = [r.guess for r in ratings if system_of.get(r.clip_id) == system.name and r.guess is not None]
        correct = sum(answer == truth for answer in answers)
        if answers:
            interval = stats.binomtest(correct, len(answers)).proportion_ci(confidence_level=0.95, method="wilson")
            low, high = float(interval.low), float(interval.high)
        else:
            low = high = math.nan
        rate = correct / len(answers) if answers else math.nan
        rows.append(Identification(system.name, system.human, len(answers), correct, rate, low, high))
    return rows
