"""Parse a folder of MIDI files once into flat note arrays plus per-piece offsets, and cache the result.

The cache key covers the file list with each file's size and mtime, and every setting that changes what is
parsed, so a changed, added or removed file or a changed setting rebuilds, and anything else loads in
milliseconds. Files that cannot be used are skipped with one warning line each and counted in a summary.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from musicrnn.errors import MusicrnnError
from musicrnn.midi_io import NOTE_DTYPE, find_midi_files, read_midi_or_reason

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
# Below this many files, starting worker processes costs more than it saves (~240 files/s per core).
MIN_FILES_FOR_WORKERS = 200


def default_cache_dir() -> Path:
    """`$MUSICRNN_CACHE_DIR`, else `$XDG_CACHE_HOME/musicrnn`, else `~/.cache/musicrnn`."""
    if os.environ.get("MUSICRNN_CACHE_DIR"):
        return Path(os.environ["MUSICRNN_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "musicrnn"


@dataclass
class PreparedCorpus:
    """All notes of a corpus in one array; piece i is `notes[offsets[i]:offsets[i + 1]]`."""

    notes: np.ndarray
    offsets: np.ndarray
    names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    cache_path: Path | None = None
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.names)

    def piece(self, index: int) -> np.ndarray:
        return self.notes[self.offsets[index] : self.offsets[index + 1]]


def parse_context():
    """fork where the platform has it: a spawned worker re-imports the parent's main module (musicrnn-train:
    torch and Lightning, ~3.5 s per worker), which cost a third of the 2-worker speed-up on POP909. Fork is
    safe here because the workers run only miditoolkit and numpy: torch's OpenMP pool, the usual hazard of
    forking a torch process, is never used in them (PyTorch's own DataLoader workers fork the same way)."""
    return get_context("fork" if "fork" in get_all_start_methods() else "spawn")


def _cache_key(root: Path, files: Sequence[Path], settings: dict) -> str:
    listing = []
    for path in files:
        stat = path.stat()
        listing.append((path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns))
    payload = json.dumps(
        {"format": CACHE_FORMAT_VERSION, "root": str(root), "settings": settings, "files": listing},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _save(corpus: PreparedCorpus, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:  # a file object, so numpy does not append ".npz" to the temporary name
        np.savez(
            f,
            notes=corpus.notes,
            offsets=corpus.offsets,
            names=np.array(corpus.names, dtype=str),
            skipped_names=np.array([s[0] for s in corpus.skipped], dtype=str),
            skipped_reasons=np.array([s[1] for s in corpus.skipped], dtype=str),
        )
    os.replace(tmp, path)  # atomic: a killed run never leaves a half-written cache behind


def _load(path: Path) -> PreparedCorpus:
    with np.load(path, allow_pickle=False) as data:
        return PreparedCorpus(
            notes=data["notes"],
            offsets=data["offsets"],
            names=data["names"].tolist(),
            skipped=list(zip(data["skipped_names"].tolist(), data["skipped_reasons"].tolist())),
            cache_path=path,
            from_cache=True,
        )


def prepare_corpus(
    root: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    include_drums: bool = False,
    programs: Sequence[int] | None = None,
    sustain: bool = False,
    num_workers: int | None = None,
    progress: bool = True,
) -> PreparedCorpus:
    """Parse every MIDI file under `root` (recursively) or load the cached result.

    Raises `MusicrnnError` when the folder is missing, holds no MIDI file, or no file is usable.
    """
    root = Path(root).expanduser().resolve()
    try:
        files = find_midi_files(root)
    except FileNotFoundError as error:
        raise MusicrnnError(str(error)) from None
    if not files:
        raise MusicrnnError(f"no MIDI files (.mid/.midi) under {root}")

    programs = tuple(sorted(int(p) for p in programs)) if programs is not None else None
    settings = {"include_drums": bool(include_drums), "programs": programs}
    if sustain:  # only when set, so that caches built before this setting existed stay valid
        settings["sustain"] = True
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache_path = cache_dir / "corpus" / f"{root.name}-{_cache_key(root, files, settings)}.npz"
    if cache_path.exists():
        try:
            corpus = _load(cache_path)
            log.info(
                "loaded prepared corpus from cache %s: %d pieces, %d notes; %d files skipped when it was built",
                cache_path, len(corpus), len(corpus.notes), len(corpus.skipped),
            )
            return corpus
        except Exception as error:  # a damaged cache is rebuilt, not fatal
            log.warning("cache %s unreadable (%s); rebuilding", cache_path, error)

    jobs = [(str(path), bool(include_drums), programs, bool(sustain)) for path in files]
    workers = num_workers if num_workers is not None else min(os.cpu_count() or 1, 8)
    bar = dict(total=len(jobs), desc=f"parsing {root.name}", unit="file", disable=not progress, mininterval=1.0)
    if workers > 1 and len(jobs) >= MIN_FILES_FOR_WORKERS:
        with ProcessPoolExecutor(workers, mp_context=parse_context()) as pool:
            results = list(tqdm(pool.map(read_midi_or_reason, jobs, chunksize=8), **bar))
    else:
        results = [read_midi_or_reason(job) for job in tqdm(jobs, **bar)]

    pieces, names, skipped = [], [], []
    for path, (notes, reason) in zip(files, results):
        name = path.relative_to(root).as_posix()
        if notes is None:
            log.warning("skipped %s: %s", path, reason)
            skipped.append((name, reason))
        else:
            pieces.append(notes)
            names.append(name)
    lengths = [len(p) for p in pieces]
    corpus = PreparedCorpus(
        notes=np.concatenate(pieces) if pieces else np.zeros(0, dtype=NOTE_DTYPE),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        names=names,
        skipped=skipped,
        cache_path=cache_path,
    )
    log.info(
        "prepared %d of %d MIDI files under %s: %d notes; skipped %d",
        len(names), len(files), root, len(corpus.notes), len(skipped),
    )
    if not names:
        raise MusicrnnError(f"no usable MIDI file under {root}: all {len(files)} skipped (see the warnings above)")
    _save(corpus, cache_path)
    return corpus
