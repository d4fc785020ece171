"""The built-in default corpus: the Bach chorales bundled with music21, written to MIDI once.

music21 ships 371 chorales as MusicXML; writing them to MIDI takes about a minute of CPU, so it happens
once, in worker processes, into the cache folder, and later runs find the files there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

COMPLETE_MARKER = ".complete"


def _write_one(args: tuple[str, str]) -> str | None:
    """Write one chorale; returns the reason it failed, or None."""
    work, out = args
    try:
        from music21 import corpus

        score = corpus.parse(work)
        tmp = Path(out).with_name(f".{Path(out).name}.tmp{os.getpid()}")
        score.write("midi", fp=str(tmp))
        os.replace(tmp, out)
        return None
    except Exception as error:  # music21 fails on a few pieces (e.g. bach/bwv277); skip them, keep the rest
        return f"{type(error).__name__}: {error}".splitlines()[0]


def _file_name(work: str) -> str:
    return work.replace("/", "_") + ".mid"


def extract_bach_chorales(
    out_dir: str | os.PathLike,
    num_workers: int | None = None,
    progress: bool = True,
    works: Sequence[str] | None = None,
) -> Path:
    """Write music21's bundled Bach chorales (or just `works`, e.g. ["bach/bwv269"]) as MIDI files into
    `out_dir`, once: a finished folder is marked, and later calls return at once."""
    out_dir = Path(out_dir).expanduser()
    if (out_dir / COMPLETE_MARKER).exists():
        return out_dir
    try:
        from music21 import corpus
    except ImportError as error:  # pragma: no cover - music21 is a dependency
        raise RuntimeError("the default corpus needs music21: pip install music21") from error

    # The iterator names some works twice (several catalogue numbers, one file): write each once.
    works = list(dict.fromkeys(works or corpus.chorales.Iterator(returnType="filename")))
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(w, str(out_dir / _file_name(w))) for w in works if not (out_dir / _file_name(w)).exists()]
    log.info("writing %d music21 Bach chorales to MIDI in %s (once)", len(jobs), out_dir)
    workers = num_workers if num_workers is not None else min(os.cpu_count() or 1, 8)
    bar = dict(total=len(jobs), desc="extracting Bach chorales", unit="piece", disable=not progress, mininterval=1.0)
    if workers > 1 and len(jobs) > 8:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            failures = list(tqdm(pool.map(_write_one, jobs, chunksize=4), **bar))
    else:
        failures = [_write_one(job) for job in tqdm(jobs, **bar)]
    for (work, _), reason in zip(jobs, failures):
        if reason is not None:
            log.warning("skipped chorale %s: %s", work, reason)
    (out_dir / COMPLETE_MARKER).write_text(f"{len(works) - sum(r is not None for r in failures)} chorales\n")
    return out_dir
