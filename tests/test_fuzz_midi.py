"""Fuzzing corpus preparation with hostile MIDI: seeded mutations of real files (POP909, the parser fixtures,
pieces written here) and synthetic monsters, prepared together with the unmutated files.

What must hold: no crash, no hang (every file ends or is cut at the per-file time limit), memory bounded
(nothing sized by a length a file claims), every file either read into sane notes or skipped with a one-line
reason, and the unmutated files' arrays identical to a run over them alone. The piano-roll path then builds
rolls from the same corpus under its frame limit.

MUSICRNN_FUZZ_COUNT sets the number of variants (default 500), MUSICRNN_FUZZ_SEED the seed (default 0).
Run with `-s` to see the table of mutation kinds and outcomes.
"""

from __future__ import annotations

import io
import os
import re
import resource
import shutil
import struct
import sys
import time
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import mido
import numpy as np
import pytest

from musicrnn.data.corpus import parse_context, prepare_corpus
from musicrnn.data.pianoroll_data import DEFAULT_MAX_FRAMES, PianoRollMidiDataModule
from musicrnn.midi.io import DEFAULT_LIMITS, find_midi_files
from musicrnn.representations.pianoroll import notes_to_pianoroll
from tests.helpers import require_shared, write_piece

FUZZ_COUNT = int(os.environ.get("MUSICRNN_FUZZ_COUNT", "500"))
FUZZ_SEED = int(os.environ.get("MUSICRNN_FUZZ_SEED", "0"))
PARSE_TIMEOUT = 3.0  # seconds; a real file here takes 0.01-0.1 s, so only hostile ones reach it
POP909_SEEDS = 24
# Memory a parser process may add to what it starts with. A claimed length honoured would need far more:
# a 2^30-byte track is 1 GiB, a 2^32-byte header 4 GiB.
WORKER_EXTRA_RSS_MB = 768
# Memory to build one roll: the longest allowed (100,000 frames of 88 keys) peaks at 44 MB; one of 2^30 ticks
# at 480 per beat and 4 frames per beat would take 3.9 GB.
ROLL_PEAK_MB = 64

Rng = np.random.Generator


# -- building blocks ------------------------------------------------------------------------------------
def _chunk(name: bytes, body: bytes) -> bytes:
    return name + struct.pack(">I", len(body)) + body


def _header(tracks: int = 1, ticks_per_beat: int = 480, fmt: int = 1) -> bytes:
    return _chunk(b"MThd", struct.pack(">HHH", fmt, tracks, ticks_per_beat))


END_OF_TRACK = b"\x00\xff\x2f\x00"


def _first_track_offset(data: bytes) -> int:
    return 8 + int.from_bytes(data[4:8], "big")


def _mido_bytes(midi: mido.MidiFile) -> bytes:
    if midi.type == 0 and len(midi.tracks) != 1:
        midi.type = 1  # mido refuses to write a type-0 file with several tracks (a fixture is one)
    out = io.BytesIO()
    midi.save(file=out)
    return out.getvalue()


def _mido(data: bytes) -> mido.MidiFile:
    return mido.MidiFile(file=io.BytesIO(data))


def _random_message_position(midi: mido.MidiFile, rng: Rng) -> tuple[mido.MidiTrack, int]:
    tracks = [t for t in midi.tracks if len(t)]
    track = tracks[int(rng.integers(len(tracks)))]
    return track, int(rng.integers(len(track)))


def _is_note_off(message) -> bool:
    return message.type == "note_off" or (message.type == "note_on" and message.velocity == 0)


def _remove_keeping_time(track: mido.MidiTrack, index: int) -> mido.Message:
    """Remove a message, handing its delta time to the next one so that nothing else moves."""
    message = track.pop(index)
    if index < len(track):
        track[index] = track[index].copy(time=track[index].time + message.time)
    return message


def _insert_before_end(track: mido.MidiTrack, message) -> None:
    at = len(track) - 1 if len(track) and track[-1].type == "end_of_track" else len(track)
    track.insert(at, message)


# -- byte-level mutations (any seed) ----------------------------------------------------------------------
def truncate(data: bytes, rng: Rng) -> bytes:
    return data[: int(rng.integers(0, len(data)))]


def bit_flips(data: bytes, rng: Rng) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 17))):
        position = int(rng.integers(len(out)))
        out[position] ^= 1 << int(rng.integers(8))
    return bytes(out)


def header_magic(data: bytes, rng: Rng) -> bytes:
    magic = [b"MThD", b"RIFF", b"MTrk", b"\x00\x00\x00\x00", bytes(rng.integers(0, 256, 4, dtype=np.uint8))]
    return magic[int(rng.integers(len(magic)))] + data[4:]


def header_length(data: bytes, rng: Rng) -> bytes:
    values = [0, 5, 7, 2**30, 0xFFFFFFFF, int(rng.integers(0, 2**32))]
    return data[:4] + struct.pack(">I", values[int(rng.integers(len(values)))]) + data[8:]


def header_format(data: bytes, rng: Rng) -> bytes:
    values = [2, 3, 0x7FFF, 0xFFFF, int(rng.integers(0, 2**16))]
    return data[:8] + struct.pack(">H", values[int(rng.integers(len(values)))]) + data[10:]


def header_tracks(data: bytes, rng: Rng) -> bytes:
    declared = int.from_bytes(data[10:12], "big")
    values = [0, declared + 1, max(declared - 1, 0), 0x7FFF, 0x8000, 0xFFFF, int(rng.integers(0, 2**16))]
    return data[:10] + struct.pack(">H", values[int(rng.integers(len(values)))]) + data[12:]


def ticks_per_beat_zero(data: bytes, rng: Rng) -> bytes:
    return data[:12] + b"\x00\x00" + data[14:]


def odd_division(data: bytes, rng: Rng) -> bytes:
    values = [1, 0x7FFF, 0x8000, 0xE728, 0xE250, int(rng.integers(0, 2**16))]  # 0x8000 and up: SMPTE
    return data[:12] + struct.pack(">H", values[int(rng.integers(len(values)))]) + data[14:]


def track_length(data: bytes, rng: Rng) -> bytes:
    """A track chunk claiming another length: 2^30 bytes above all (the claimed-length case)."""
    offset = _first_track_offset(data)
    if offset + 8 > len(data):
        return data[:offset] + _chunk(b"MTrk", b"")[:4] + struct.pack(">I", 2**30)
    actual = int.from_bytes(data[offset + 4 : offset + 8], "big")
    values = [2**30, 2**30, 0xFFFFFFFF, 0, actual + 1, max(actual - 1, 0), int(rng.integers(0, 2**32))]
    value = values[int(rng.integers(len(values)))]
    return data[: offset + 4] + struct.pack(">I", value) + data[offset + 8 :]


def meta_length(data: bytes, rng: Rng) -> bytes:
    """A text meta event whose length claims up to 2^28 bytes, inside a track whose own length is right."""
    claims = [b"\xff\xff\xff\x7f", b"\xbd\x84\x3f", b"\x84\x80\x00"]  # 0x0FFFFFFF, 999_999, 65_536 (VLQ)
    event = b"\x00\xff\x01" + claims[int(rng.integers(len(claims)))] + b"text"
    offset = _first_track_offset(data)
    end = offset + 8 + int.from_bytes(data[offset + 4 : offset + 8], "big")
    return data[:offset] + _chunk(b"MTrk", event + data[offset + 8 : end]) + data[end:]


def random_track_bytes(data: bytes, rng: Rng) -> bytes:
    """A valid header and track chunk around random event bytes."""
    body = bytes(rng.integers(0, 256, int(rng.integers(1, 4000)), dtype=np.uint8))
    return _header(tracks=1) + _chunk(b"MTrk", body)


# -- event-level mutations (seeds mido reads) ---------------------------------------------------------
def absurd_delta(data: bytes, rng: Rng) -> bytes:
    midi = _mido(data)
    track, index = _random_message_position(midi, rng)
    values = [0x0FFFFFFF, 0x0FFFFFFF, 2**40, 2**70, 2**140]  # 2^70 and up: deltas no int64 holds
    track[index] = track[index].copy(time=values[int(rng.integers(len(values)))])
    return _mido_bytes(midi)


def absurd_tempo(data: bytes, rng: Rng) -> bytes:
    midi = _mido(data)
    track, index = _random_message_position(midi, rng)
    tempo = [0, 1, 0xFFFFFF][int(rng.integers(3))]  # microseconds per beat: 0, 60 million bpm, 3.58 bpm
    track.insert(index, mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    return _mido_bytes(midi)


def stuck_notes(data: bytes, rng: Rng) -> bytes:
    """Notes that never end: every note-off removed from one track, or from all."""
    midi = _mido(data)
    tracks = midi.tracks if rng.random() < 0.5 else [midi.tracks[int(rng.integers(len(midi.tracks)))]]
    for track in tracks:
        for index in reversed([i for i, m in enumerate(track) if _is_note_off(m)]):
            _remove_keeping_time(track, index)
    return _mido_bytes(midi)


def late_note_off(data: bytes, rng: Rng) -> bytes:
    """One note released absurdly late: its note-off moved to the end of its track after a huge delta."""
    midi = _mido(data)
    offs = [(t, i) for t in midi.tracks for i, m in enumerate(t) if _is_note_off(m)]
    if not offs:
        return absurd_delta(data, rng)
    track, index = offs[int(rng.integers(len(offs)))]
    message = _remove_keeping_time(track, index)
    delay = [0x0FFFFFFF, 10**6, 2**35][int(rng.integers(3))]
    _insert_before_end(track, message.copy(time=delay))
    return _mido_bytes(midi)


def sustain_pedal(data: bytes, rng: Rng) -> bytes:
    """The sustain pedal pressed at the start and never lifted, or lifted after an absurd delay."""
    midi = _mido(data)
    track = midi.tracks[int(rng.integers(len(midi.tracks)))]
    for index in reversed([i for i, m in enumerate(track) if m.type == "control_change" and m.control == 64]):
        _remove_keeping_time(track, index)
    track.insert(0, mido.Message("control_change", control=64, value=127, time=0))
    if rng.random() < 0.5:
        _insert_before_end(
            track, mido.Message("control_change", control=64, value=0, time=[0x0FFFFFFF, 2**70][int(rng.integers(2))])
        )
    return _mido_bytes(midi)


def long_piece(data: bytes, rng: Rng) -> bytes:
    """A piece under the beat limit whose roll is over the frame limit: 9,600 ticks per beat and a note
    0x0FFFFFFF ticks in (28,000 beats: 112,000 frames at 4 per beat)."""
    midi = _mido(data)
    midi.ticks_per_beat = 9600
    track = midi.tracks[-1]
    _insert_before_end(track, mido.Message("note_on", note=60, velocity=80, time=0x0FFFFFFF))
    _insert_before_end(track, mido.Message("note_off", note=60, velocity=0, time=100))
    return _mido_bytes(midi)


# -- synthetic monsters (the seed is ignored) ------------------------------------------------------------
def _note_pairs(count: int) -> bytes:
    """`count` short notes in running status: 6 bytes each."""
    return b"\x00\x90\x3c\x40\x00\x3c\x00" + b"\x01\x3c\x40\x00\x3c\x00" * (count - 1)


def many_events(data: bytes, rng: Rng) -> bytes:
    """75,000 to 200,000 notes (0.45 to 1.2 MB): slow to parse, under the size limit."""
    return _header() + _chunk(b"MTrk", _note_pairs(int(rng.integers(75_000, 200_000))) + END_OF_TRACK)


def huge_events(data: bytes, rng: Rng) -> bytes:
    """1 to 2 million notes (2 to 4 million events, 6 to 12 MB), generated compactly."""
    return _header() + _chunk(b"MTrk", _note_pairs(int(rng.integers(1_000_000, 2_000_001))) + END_OF_TRACK)


def stacked_note_ons(data: bytes, rng: Rng) -> bytes:
    """30,000 to 60,000 note-ons of one pitch, then as many note-offs: miditoolkit pairs them in quadratic
    time (minutes to hours from a few hundred kB): the time limit must cut it."""
    count = int(rng.integers(30_000, 60_000))
    body = b"\x00\x90\x3c\x40" + b"\x00\x3c\x40" * (count - 1) + b"\x00\x3c\x00" * count + END_OF_TRACK
    return _header() + _chunk(b"MTrk", body)


Mutation = Callable[[bytes, Rng], bytes]
# (mutation, weight, needs a seed mido can read). The costly kinds (each takes up to the time limit or
# writes megabytes) get small weights; every kind gets at least one variant.
MUTATIONS: dict[str, tuple[Mutation, float, bool]] = {
    "truncate": (truncate, 14, False),
    "bit_flips": (bit_flips, 18, False),
    "header_magic": (header_magic, 3, False),
    "header_length": (header_length, 4, False),
    "header_format": (header_format, 3, False),
    "header_tracks": (header_tracks, 4, False),
    "ticks_per_beat_zero": (ticks_per_beat_zero, 3, False),
    "odd_division": (odd_division, 3, False),
    "track_length": (track_length, 6, False),
    "meta_length": (meta_length, 3, False),
    "random_track_bytes": (random_track_bytes, 4, False),
    "absurd_delta": (absurd_delta, 8, True),
    "absurd_tempo": (absurd_tempo, 8, True),
    "stuck_notes": (stuck_notes, 6, True),
    "late_note_off": (late_note_off, 5, True),
    "sustain_pedal": (sustain_pedal, 4, True),
    "long_piece": (long_piece, 2, True),
    "many_events": (many_events, 0.6, False),
    "huge_events": (huge_events, 0.4, False),
    "stacked_note_ons": (stacked_note_ons, 0.6, False),
}


def variant_counts(total: int) -> dict[str, int]:
    weights = {kind: weight for kind, (_, weight, _) in MUTATIONS.items()}
    counts = {kind: max(1, int(total * weight / sum(weights.values()))) for kind, weight in weights.items()}
    counts["bit_flips"] += total - sum(counts.values())  # the rounding remainder
    return counts


# -- the corpus ---------------------------------------------------------------------------------------
def _seed_files(tmp_path: Path, rng: Rng) -> list[Path]:
    pop909 = sorted(require_shared("pop909", "POP909").glob("*/*.mid"))
    fixtures = find_midi_files(require_shared("midi_fixtures"))
    chosen = [pop909[i] for i in sorted(rng.choice(len(pop909), POP909_SEEDS, replace=False))]
    written = [write_piece(tmp_path / "written" / f"piece{i}.mid", seed=i, num_bars=8) for i in range(4)]
    return chosen + fixtures + written


def _write_originals(seeds: list[Path], root: Path) -> None:
    """Copies of the seed files (the unmutated ones) under root/original, named so that they never clash."""
    for i, path in enumerate(seeds):
        target = root / "original" / f"{i:03d}_{path.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def _mido_readable(data: bytes) -> bool:
    try:
        return len(_mido(data).tracks) > 0
    except Exception:
        return False


def _write_variants(seeds: list[Path], root: Path, counts: dict[str, int], rng: Rng) -> dict[str, str]:
    """Mutated files under root/fuzz; returns {relative name: mutation kind}."""
    blobs = [p.read_bytes() for p in seeds]
    parseable = [b for b in blobs if len(b) >= 14 and _mido_readable(b)]
    kinds = {}
    (root / "fuzz").mkdir(parents=True, exist_ok=True)
    for kind, count in counts.items():
        mutate, _, needs_mido = MUTATIONS[kind]
        pool = parseable if needs_mido else [b for b in blobs if len(b) >= 14]
        for i in range(count):
            name = f"fuzz/{kind}_{i:04d}.mid"
            (root / name).write_bytes(mutate(pool[int(rng.integers(len(pool)))], rng))
            kinds[name] = kind
    return kinds


def _prepare(root: Path, cache: Path):
    return prepare_corpus(
        root,
        cache_dir=cache,
        include_drums=True,
        sustain=True,
        num_workers=2,
        progress=False,
        parse_timeout=PARSE_TIMEOUT,
    )


def _children_peak_rss_mb() -> float:
    """The largest peak resident size of any child process waited for so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _own_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def _send_own_rss(connection) -> None:
    connection.send(_own_rss_mb())


def _fresh_worker_rss_mb() -> float | None:
    """The resident size a parser process starts with: that of a child forked now (it inherits this
    process's anonymous pages, not its libraries' file pages). None where there is no /proc and no fork
    (the memory check is Linux's, like the parser's memory limit)."""
    if not sys.platform.startswith("linux"):
        return None
    context = parse_context()
    ours, theirs = context.Pipe()
    child = context.Process(target=_send_own_rss, args=(theirs,))
    child.start()
    rss = ours.recv()
    child.join()
    return rss


def _assert_sane(notes: np.ndarray, name: str) -> None:
    """The invariants of any piece that was read: finite, non-negative, ordered, inside MIDI and the limits."""
    assert 0 < len(notes) <= DEFAULT_LIMITS.max_notes, name
    for column in ("start", "end", "start_beat", "end_beat"):
        assert np.all(np.isfinite(notes[column])) and notes[column].min() >= 0, (name, column)
    assert np.all(notes["end_tick"] >= notes["start_tick"]) and notes["start_tick"].min() >= 0, name
    assert np.all(notes["end"] >= notes["start"]) and np.all(np.diff(notes["start_tick"]) >= 0), name
    assert notes["end_beat"].max() <= DEFAULT_LIMITS.max_beats and notes["end"].max() <= DEFAULT_LIMITS.max_seconds, (
        name
    )
    assert np.all((notes["pitch"] >= 0) & (notes["pitch"] <= 127)) and np.all(
        (notes["velocity"] >= 0) & (notes["velocity"] <= 127)
    ), name


def _largest_roll_peak_mb(corpus) -> float:
    """The most memory building any one piece's roll took (or refusing it, over the frame limit)."""
    largest = 0
    tracemalloc.start()
    try:
        for i in range(len(corpus)):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            try:
                notes_to_pianoroll(corpus.piece(i), 4, 21, 88, max_frames=DEFAULT_MAX_FRAMES)
            except ValueError:
                pass  # refused before allocating: what is measured is that it cost nothing
            largest = max(largest, tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    return largest / 2**20


def _reason_class(reason: str) -> str:
    """A reason with its numbers and quoted bytes blanked, to count reasons by kind."""
    reason = re.sub(r"b'[^']*'|b\"[^\"]*\"", "B", reason)
    return re.sub(r"\d+(\.\d+)?(e[+-]?\d+)?", "N", reason)[:90]


def _print_table(kinds: dict[str, str], parsed: set[str], reasons: dict[str, str], elapsed: float, extra: str) -> None:
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for name, kind in kinds.items():
        by_kind[kind]["parsed" if name in parsed else "skipped"] += 1
    print(f"\nfuzz: {len(kinds)} variants (seed {FUZZ_SEED}), prepared in {elapsed:.1f} s; {extra}")
    print(f"{'kind':22} {'variants':>8} {'parsed':>7} {'skipped':>8}")
    for kind in MUTATIONS:
        counts = by_kind[kind]
        print(f"{kind:22} {counts['parsed'] + counts['skipped']:8d} {counts['parsed']:7d} {counts['skipped']:8d}")
    print("skip reasons:")
    for reason, count in Counter(_reason_class(r) for n, r in reasons.items() if n in kinds).most_common():
        print(f"  {count:5d}  {reason}")


# -- the test -----------------------------------------------------------------------------------------
@pytest.mark.slow  # parser worker processes, hundreds of files
@pytest.mark.shared_data
def test_hostile_midi_never_crashes_hangs_or_changes_the_good_files(tmp_path):
    rng = np.random.default_rng(FUZZ_SEED)
    seeds = _seed_files(tmp_path, rng)
    alone, mixed = tmp_path / "alone", tmp_path / "mixed"
    _write_originals(seeds, alone)
    _write_originals(seeds, mixed)
    kinds = _write_variants(seeds, mixed, variant_counts(FUZZ_COUNT), rng)
    assert len(kinds) == FUZZ_COUNT >= 1

    reference = _prepare(alone, tmp_path / "cache_alone")
    worker_start_rss = _fresh_worker_rss_mb()
    started = time.monotonic()
    corpus = _prepare(mixed, tmp_path / "cache_mixed")
    elapsed = time.monotonic() - started

    # Every file is accounted for once: read, or skipped with a one-line reason.
    names = set(corpus.names)
    reasons = dict(corpus.skipped)
    every = {p.relative_to(mixed).as_posix() for p in find_midi_files(mixed)}
    assert names | set(reasons) == every and not names & set(reasons)
    assert all(reason.strip() and "\n" not in reason for reason in reasons.values())

    # The unmutated files come out exactly as when prepared alone (same arrays, same skips).
    assert [n for n in corpus.names if n.startswith("original/")] == reference.names
    for i, name in enumerate(reference.names):
        piece = corpus.piece(corpus.names.index(name))
        assert piece.tobytes() == reference.piece(i).tobytes(), name
    assert {n: r for n, r in corpus.skipped if n.startswith("original/")} == dict(reference.skipped)

    # Whatever a mutation left readable is sane music.
    for i, name in enumerate(corpus.names):
        _assert_sane(corpus.piece(i), name)

    # No hang: each file ended or was cut at the time limit (a stacked-note-ons file alone takes hours).
    timed_out = sum(r.startswith("took longer than") for r in reasons.values())
    assert elapsed < 30 + 0.25 * len(every) + PARSE_TIMEOUT * timed_out, elapsed

    # Bounded memory: no parser process grew by anything like a claimed length. (Earlier tests' children
    # count too; they parse ordinary files.)
    worker_extra = _children_peak_rss_mb() - worker_start_rss if worker_start_rss is not None else float("nan")
    assert not worker_extra >= WORKER_EXTRA_RSS_MB, f"a parser process grew by {worker_extra:.0f} MB"
    assert not any(r.startswith("needed more than") for r in reasons.values())  # none reached the memory limit

    # The piano-roll path over the same corpus (a cache hit): rolls bounded by the frame limit.
    datamodule = PianoRollMidiDataModule(
        str(mixed),
        include_drums=True,
        sustain=True,
        cache_dir=str(tmp_path / "cache_mixed"),
        parse_timeout=PARSE_TIMEOUT,
        val_fraction=0.0,
        test_fraction=0.0,
    )
    rolls = datamodule.load_rolls()
    assert all(len(roll) <= DEFAULT_MAX_FRAMES for split in rolls.values() for roll in split)
    assert len(rolls["train"]) + len(datamodule.skipped_rolls) == len(corpus)
    assert all(name in kinds for name, _ in datamodule.skipped_rolls)  # no original piece is too long
    roll_peak_mb = _largest_roll_peak_mb(corpus)
    assert roll_peak_mb < ROLL_PEAK_MB

    _print_table(
        kinds,
        names,
        reasons,
        elapsed,
        f"{timed_out} cut at {PARSE_TIMEOUT:g} s; parser processes grew by at most {worker_extra:.0f} MB; "
        f"one roll took at most {roll_peak_mb:.0f} MB, {len(datamodule.skipped_rolls)} refused over {DEFAULT_MAX_FRAMES} frames",
    )
