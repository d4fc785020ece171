"""Parse a folder of MIDI files once into flat note arrays plus per-piece offsets, and cache the result.

The cache key covers the file list with each file's size and mtime, and every setting that changes what is
parsed, so a changed, added or removed file or a changed setting rebuilds, and anything else loads in
milliseconds. Files that cannot be used are skipped with one warning line each and counted in a summary.

Scraped collections hold hostile files, so every file is parsed in a worker process under a time limit and
a memory limit (and under `MidiLimits`): a file that hangs the parser or needs too much memory is skipped
with that reason and its worker replaced, and no other file's result changes. The cache file ends with the
sha256 of everything before it, checked before anything is read from it: a truncated or corrupted cache is
rebuilt, never used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import signal
import sys
import time
import zipfile
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import BinaryIO

import numpy as np
from tqdm.auto import tqdm

from musicrnn.errors import MusicrnnError, one_line
from musicrnn.midi.io import DEFAULT_LIMITS, NOTE_DTYPE, MidiLimits, ReadJob, find_midi_files, read_midi_or_reason
from musicrnn.midi.parsers import DEFAULT_PARSER, PARSERS

log = logging.getLogger(__name__)

# Still 1 after checksums came: a cache without one is rebuilt in place (same key, same file name), instead
# of being left behind under an old key.
CACHE_FORMAT_VERSION = 1
# Below this many files, one worker process parses them all (symusic: ~1,000 POP909 files/s per core;
# miditoolkit: ~35): more would cost more to start than they save.
MIN_FILES_FOR_WORKERS = 200
# Seconds one file may take to parse. A real file takes 0.001 to 0.05 s with symusic, 0.01 to 1 s with
# miditoolkit (POP909: 0.03 s); a file of the largest size `MidiLimits` allows, 10 to 80 s with miditoolkit.
# A file over it is skipped (its worker is killed and replaced).
DEFAULT_PARSE_TIMEOUT = 60.0
# Address space (MiB) a parser process may add to what it starts with (Linux; elsewhere unbounded). Parsing
# needs about 110 bytes per file byte, so under 1 GB for the largest file `MidiLimits` allows.
PARSER_MEMORY_MB = 4096
CHECKSUM_LENGTH = 64  # a sha256 in hex: the cache file's last bytes (its zip comment)

ParseResult = tuple[np.ndarray | None, str | None]


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


class CacheDamaged(Exception):
    """A cache file that must not be used; the message says why, in one line."""


def _sha256(f: BinaryIO, length: int) -> str:
    """The sha256 of the next `length` bytes of `f`, read 1 MiB at a time."""
    digest = hashlib.sha256()
    while length > 0:
        chunk = f.read(min(length, 1 << 20))
        if not chunk:
            break
        digest.update(chunk)
        length -= len(chunk)
    return digest.hexdigest()


def _seal(path: Path) -> None:
    """End the file with the sha256 of everything before it, stored as the zip archive's comment, so the file
    stays an ordinary .npz. A placeholder of the digest's length goes in first, to fix the bytes before it."""
    with zipfile.ZipFile(path, "a") as archive:
        archive.comment = b"0" * CHECKSUM_LENGTH
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        digest = _sha256(f, size - CHECKSUM_LENGTH)
        f.seek(size - CHECKSUM_LENGTH)
        f.write(digest.encode("ascii"))


def _verify(f: BinaryIO) -> None:
    """Raise CacheDamaged unless the open file ends with the sha256 of everything before it."""
    size = os.fstat(f.fileno()).st_size
    if size <= CHECKSUM_LENGTH:
        raise CacheDamaged(f"truncated ({size} bytes)")
    actual = _sha256(f, size - CHECKSUM_LENGTH).encode("ascii")
    stored = f.read(CHECKSUM_LENGTH)
    if stored == actual:
        return
    if all(c in b"0123456789abcdef" for c in stored):
        raise CacheDamaged("checksum mismatch: the file is truncated or corrupted")
    raise CacheDamaged("no checksum at its end: truncated, corrupted, or written before caches had checksums")


def _save(corpus: PreparedCorpus, path: Path, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:  # a file object, so numpy does not append ".npz" to the temporary name
            np.savez(
                f,
                notes=corpus.notes,
                offsets=corpus.offsets,
                names=np.array(corpus.names, dtype=str),
                skipped_names=np.array([s[0] for s in corpus.skipped], dtype=str),
                skipped_reasons=np.array([s[1] for s in corpus.skipped], dtype=str),
                key=np.array(key),
            )
        _seal(tmp)
        os.replace(tmp, path)  # atomic: a killed run never leaves a half-written cache behind
    finally:
        tmp.unlink(missing_ok=True)


def _load(path: Path, key: str) -> PreparedCorpus:
    """The cached corpus, read from the same open file whose checksum was verified (so a file replaced
    meanwhile cannot slip in unverified), and only if it was built under `key` (an intact cache copied to
    another corpus's name must not pass as that corpus). Raises CacheDamaged, or whatever numpy raises."""
    with open(path, "rb") as f:
        _verify(f)
        f.seek(0)
        with np.load(f, allow_pickle=False) as data:
            stored_key = str(data["key"]) if "key" in data.files else None
            if stored_key != key:
                raise CacheDamaged(f"built for another folder or settings (key {stored_key}, expected {key})")
            return PreparedCorpus(
                notes=data["notes"],
                offsets=data["offsets"],
                names=data["names"].tolist(),
                skipped=list(zip(data["skipped_names"].tolist(), data["skipped_reasons"].tolist())),
                cache_path=path,
                from_cache=True,
            )


def _load_if_intact(path: Path, key: str) -> PreparedCorpus | None:
    """The cached corpus, or None when there is none or it is damaged (one warning line: then it is rebuilt)."""
    if not path.exists():
        return None
    try:
        corpus = _load(path, key)
    except CacheDamaged as error:
        log.warning("cache %s not used (%s); rebuilding it", path, error)
        return None
    except Exception as error:  # any other unreadable cache is rebuilt too, never fatal
        log.warning(
            "cache %s not used (unreadable: %s: %s); rebuilding it", path, type(error).__name__, one_line(error)
        )
        return None
    log.info(
        "loaded prepared corpus from cache %s: %d pieces, %d notes; %d files skipped when it was built",
        path,
        len(corpus),
        len(corpus.notes),
        len(corpus.skipped),
    )
    return corpus


# -- parsing in worker processes -------------------------------------------------------------------------
def _limit_address_space(extra_mb: int | None) -> None:
    """Cap this process's address space at its current size plus `extra_mb`, so that a file needing more
    fails with MemoryError here instead of exhausting the machine. Linux only: macOS ignores RLIMIT_AS."""
    if extra_mb is None or not sys.platform.startswith("linux"):
        return
    import resource

    try:
        with open("/proc/self/statm") as f:
            current = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = current + extra_mb * 1024 * 1024
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (OSError, ValueError):
        pass  # no /proc, or a sandbox refuses: parse without the cap rather than not at all


def _out_of_memory_reason(memory_mb: int | None) -> str:
    return f"needed more than {memory_mb} MB of memory to parse" if memory_mb else "ran out of memory while parsing"


def _serve(connection: Connection, parse: Callable[[ReadJob], ParseResult], memory_mb: int | None) -> None:
    """A parser process: parse each (index, job) received and send back (index, result), until None comes
    or the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    _limit_address_space(memory_mb)
    parent = os.getppid()
    while True:
        if not connection.poll(1.0):
            if os.getppid() != parent:
                return  # the parent was killed: nobody will read a result
            continue
        try:
            message = connection.recv()
        except EOFError:
            return
        if message is None:
            return
        index, job = message
        try:
            result = parse(job)
        except MemoryError:
            result = (None, _out_of_memory_reason(memory_mb))
        connection.send((index, result))


@dataclass
class _Worker:
    process: BaseProcess
    connection: Connection
    index: int | None = None  # the job it is parsing; None when idle
    deadline: float = math.inf


class _ParserPool:
    """Worker processes that parse one file at a time each, so that a file over the time limit can be
    stopped (its worker killed and replaced) without losing any other file's result. A worker that dies
    (a crash, the kernel's out-of-memory killer) costs only the file it was parsing."""

    def __init__(
        self, parse: Callable[[ReadJob], ParseResult], processes: int, timeout: float | None, memory_mb: int | None
    ):
        self.parse = parse
        self.processes = processes
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.context = parse_context()

    def run(self, jobs: Sequence[ReadJob], on_result: Callable[[], None]) -> list[ParseResult]:
        results: list[ParseResult] = [(None, "not parsed")] * len(jobs)
        waiting = deque(range(len(jobs)))
        workers: list[_Worker] = []
        try:
            workers = [self._start() for _ in range(min(self.processes, len(jobs)))]
            while waiting or any(worker.index is not None for worker in workers):
                for position, worker in enumerate(workers):
                    if worker.index is None and waiting:
                        workers[position] = self._assign(worker, waiting.popleft(), jobs)
                for index, result in self._collect(workers):
                    results[index] = result
                    on_result()
        finally:
            for worker in workers:
                self._stop(worker)
        return results

    def _start(self) -> _Worker:
        parent_end, child_end = self.context.Pipe()
        process = self.context.Process(
            target=_serve, args=(child_end, self.parse, self.memory_mb), name="musicrnn-parser", daemon=True
        )
        process.start()
        child_end.close()  # the worker holds the only other end, so its death reads as end-of-file here
        return _Worker(process, parent_end)

    def _assign(self, worker: _Worker, index: int, jobs: Sequence[ReadJob]) -> _Worker:
        try:
            worker.connection.send((index, jobs[index]))
        except OSError:  # it died while idle: a fresh one takes the job
            self._kill(worker)
            worker = self._start()
            worker.connection.send((index, jobs[index]))
        worker.index = index
        worker.deadline = time.monotonic() + self.timeout if self.timeout is not None else math.inf
        return worker

    def _collect(self, workers: list[_Worker]) -> list[tuple[int, ParseResult]]:
        """Wait until a worker answers or the earliest deadline passes; the finished jobs' results. A worker
        that died or overran is replaced in `workers`."""
        busy = [worker for worker in workers if worker.index is not None]
        timeout = None if self.timeout is None else max(0.0, min(w.deadline for w in busy) - time.monotonic())
        ready = wait([worker.connection for worker in busy], timeout)
        finished = []
        for position, worker in enumerate(workers):
            if worker.index is None:
                continue
            if worker.connection in ready:
                try:
                    index, result = worker.connection.recv()
                except (EOFError, OSError):
                    finished.append((worker.index, (None, self._death_reason(worker))))
                    workers[position] = self._replace(worker)
                    continue
                worker.index, worker.deadline = None, math.inf
                finished.append((index, result))
            elif time.monotonic() >= worker.deadline:
                finished.append((worker.index, (None, f"took longer than {self.timeout:g} s to parse")))
                workers[position] = self._replace(worker)
        return finished

    def _death_reason(self, worker: _Worker) -> str:
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        if code is not None and code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exit status {code}"
        return f"the parser process died while parsing it ({how})"

    def _replace(self, worker: _Worker) -> _Worker:
        self._kill(worker)
        return self._start()

    @staticmethod
    def _kill(worker: _Worker) -> None:
        worker.process.kill()
        worker.process.join()
        worker.connection.close()

    def _stop(self, worker: _Worker) -> None:
        """An idle worker is asked to exit; a busy one (only after an error or Ctrl-C here) is killed."""
        if worker.index is None:
            try:
                worker.connection.send(None)
                worker.process.join(timeout=5)
            except OSError:
                pass
        self._kill(worker)  # (a worker that has exited is not signalled again)


def _parse_here(parse: Callable[[ReadJob], ParseResult], job: ReadJob) -> ParseResult:
    try:
        return parse(job)
    except MemoryError:
        return None, _out_of_memory_reason(None)


def _process_count(num_workers: int | None, files: int) -> int:
    wanted = num_workers if num_workers is not None else min(os.cpu_count() or 1, 8)
    return max(1, wanted) if files >= MIN_FILES_FOR_WORKERS else 1


def _settings(
    include_drums: bool,
    programs: tuple[int, ...] | None,
    sustain: bool,
    limits: MidiLimits,
    parse_timeout: float | None,
    parser: str,
) -> dict:
    """What the cache key records about how files are parsed. The later settings enter it only when they
    differ from their defaults, so that a cache built before a setting existed keeps its key; the parser
    always does, so that a cache miditoolkit built (before symusic became the default) is rebuilt once."""
    settings: dict = {"include_drums": bool(include_drums), "programs": programs, "parser": parser}
    if sustain:
        settings["sustain"] = True
    if limits != DEFAULT_LIMITS:
        settings["limits"] = dataclasses.asdict(limits)
    if parse_timeout != DEFAULT_PARSE_TIMEOUT:  # a longer limit may keep files a shorter one skipped
        settings["parse_timeout"] = parse_timeout
    return settings


def prepare_corpus(
    root: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    include_drums: bool = False,
    programs: Sequence[int] | None = None,
    sustain: bool = False,
    num_workers: int | None = None,
    progress: bool = True,
    limits: MidiLimits = DEFAULT_LIMITS,
    parse_timeout: float | None = DEFAULT_PARSE_TIMEOUT,
    parser: str = DEFAULT_PARSER,
) -> PreparedCorpus:
    """Parse every MIDI file under `root` (recursively) or load the cached result.

    Each file is parsed in a worker process (`num_workers` of them for 200 files or more, else one) and
    skipped, with its reason, when it takes longer than `parse_timeout` seconds, needs more than
    `PARSER_MEMORY_MB` of memory, or breaks `limits`. `parse_timeout=None` lifts the time limit (and
    parses a small folder in this process). `parser` reads the files: "symusic" (the default) or
    "miditoolkit" (40x slower; see musicrnn.midi.parsers). Raises `MusicrnnError` when the folder is missing,
    holds no MIDI file, or no file is usable, and for an unknown parser.
    """
    if parser not in PARSERS:
        raise MusicrnnError(f"data.parser={parser!r} is not a MIDI parser: choose one of {', '.join(PARSERS)}")
    if parse_timeout is not None and not parse_timeout > 0:
        raise ValueError(f"parse_timeout must be a positive number of seconds or None, got {parse_timeout}")
    root = Path(root).expanduser().resolve()
    try:
        files = find_midi_files(root)
    except FileNotFoundError as error:
        raise MusicrnnError(str(error)) from None
    if not files:
        raise MusicrnnError(f"no MIDI files (.mid/.midi) under {root}")

    programs = tuple(sorted(int(p) for p in programs)) if programs is not None else None
    settings = _settings(include_drums, programs, sustain, limits, parse_timeout, parser)
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = _cache_key(root, files, settings)
    cache_path = cache_dir / "corpus" / f"{root.name}-{key}.npz"
    cached = _load_if_intact(cache_path, key)
    if cached is not None:
        return cached

    jobs = [ReadJob(str(path), bool(include_drums), programs, bool(sustain), limits, parser) for path in files]
    processes = _process_count(num_workers, len(jobs))
    with tqdm(total=len(jobs), desc=f"parsing {root.name}", unit="file", disable=not progress, mininterval=1.0) as bar:
        if parse_timeout is None and processes == 1:
            results = []
            for job in jobs:
                results.append(_parse_here(read_midi_or_reason, job))
                bar.update(1)
        else:
            pool = _ParserPool(read_midi_or_reason, processes, parse_timeout, PARSER_MEMORY_MB)
            results = pool.run(jobs, lambda: bar.update(1))

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
        len(names),
        len(files),
        root,
        len(corpus.notes),
        len(skipped),
    )
    _note_timeouts(skipped, parse_timeout)
    if not names:
        raise MusicrnnError(f"no usable MIDI file under {root}: all {len(files)} skipped (see the warnings above)")
    _save(corpus, cache_path, key)
    return corpus


def _note_timeouts(skipped: list[tuple[str, str]], parse_timeout: float | None) -> None:
    """Say once that time-limit skips are remembered, since a busy machine can push a large file over."""
    slow = sum(reason.startswith("took longer than") for _, reason in skipped)
    if slow:
        log.info(
            "%d files took longer than %g s to parse; the cache remembers them as skipped until the files or "
            "parse_timeout change (raise it to keep them)",
            slow,
            parse_timeout,
        )
