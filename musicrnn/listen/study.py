"""A listening study on disk: named systems of MIDI files, cut and rendered to clips with opaque ids.

STUDY/study.json       what was rendered from what (read by `serve` and `results`; never served)
STUDY/audio/<id>.wav   the clips the page plays, addressed only by their opaque id
STUDY/midi/<id>.mid    the cut MIDI each clip was rendered from
STUDY/ratings.sqlite   the listeners' ratings (written by `serve`)
"""

from __future__ import annotations

import glob
import json
import os
import random
import re
import secrets
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

from musicrnn.errors import MusicrnnError
from musicrnn.listen.clips import read_clip_notes, render_clip
from musicrnn.midi.audio import AudioUnavailable, audio_unavailable_reason, find_soundfont
from musicrnn.midi.io import MIDI_SUFFIXES, find_midi_files

STUDY_FILE = "study.json"
DATABASE_FILE = "ratings.sqlite"
SYSTEM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class System:
    """A named set of pieces: `sources` are the folders, globs or files given for it; `human` marks real
    music (what a listener's "human or machine?" answer is scored against)."""

    name: str
    sources: list[str]
    human: bool


@dataclass(frozen=True)
class Clip:
    id: str  # opaque: random, unrelated to the system or the file
    system: str
    source: str  # the MIDI file the clip was cut from
    audio: str  # relative to the study folder
    seconds: float


@dataclass(frozen=True)
class Study:
    folder: Path
    study_id: str
    clip_seconds: float
    ask_human_or_machine: bool
    systems: list[System]
    clips: list[Clip]

    @property
    def database(self) -> Path:
        return self.folder / DATABASE_FILE

    def clip(self, clip_id: str) -> Clip | None:
        return self._by_id.get(clip_id)

    @cached_property
    def _by_id(self) -> dict[str, Clip]:
        return {clip.id: clip for clip in self.clips}

    def system(self, name: str) -> System:
        return next(system for system in self.systems if system.name == name)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Study:
        folder = Path(folder)
        path = folder / STUDY_FILE
        if not folder.is_dir():
            raise MusicrnnError(f"study folder not found: {folder}")
        if not path.is_file():
            raise MusicrnnError(
                f"{folder} is not a study (no {STUDY_FILE}): make one with musicrnn-listen make-study ... out={folder}"
            )
        try:
            raw = json.loads(path.read_text())
            study = cls(
                folder=folder,
                study_id=raw["study_id"],
                clip_seconds=float(raw["clip_seconds"]),
                ask_human_or_machine=bool(raw["ask_human_or_machine"]),
                systems=[System(**system) for system in raw["systems"]],
                clips=[Clip(**clip) for clip in raw["clips"]],
            )
        except (ValueError, KeyError, TypeError) as error:
            raise MusicrnnError(f"{path}: not a readable study description ({type(error).__name__}: {error})") from None
        missing = [clip.audio for clip in study.clips if not (folder / clip.audio).is_file()]
        if missing:
            raise MusicrnnError(
                f"{folder}: {len(missing)} clip(s) listed in {STUDY_FILE} have no audio, e.g. {missing[0]}"
            )
        return study

    def save(self) -> Path:
        raw = {
            "study_id": self.study_id,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "clip_seconds": self.clip_seconds,
            "ask_human_or_machine": self.ask_human_or_machine,
            "soundfont": str(find_soundfont()),
            "systems": [asdict(system) for system in self.systems],
            "clips": [asdict(clip) for clip in self.clips],
        }
        path = self.folder / STUDY_FILE
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(raw, indent=2) + "\n")
        os.replace(tmp, path)
        return path


def expand_sources(system: str, source: str) -> list[Path]:
    """The MIDI files a folder (recursively), a glob or a single file names; an error when there are none."""
    path = Path(source).expanduser()
    if path.is_dir():
        files = find_midi_files(path)
    elif glob.has_magic(source):
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(source), recursive=True) if Path(p).is_file())
        files = [p for p in files if p.suffix.lower() in MIDI_SUFFIXES]
    elif path.is_file():
        files = [path]
    else:
        raise MusicrnnError(f"system {system}: {source}: no such folder or file")
    if not files:
        raise MusicrnnError(f"system {system}: {source} matches no MIDI files (.mid, .midi)")
    return files


def make_study(
    systems: dict[str, list[str]],
    out: str | os.PathLike,
    *,
    clip_seconds: float = 20.0,
    human: set[str] | None = None,
    program: int | None = None,
    max_per_system: int | None = None,
    seed: int = 0,
    ask_human_or_machine: bool = True,
) -> Study:
    """Cut and render every system's MIDI files to clips under opaque ids and write the study to `out`.

    `human` names the systems of real music (default: `references`). `max_per_system` draws that many
    files of a larger system at random (`seed`). Every file is read before anything is rendered, so a
    corrupt file stops the study at once; the clips are rendered into a temporary folder and moved into
    `out` only when all succeeded, so a failed run leaves no half-made study.
    """
    out = Path(out)
    if not systems:
        raise MusicrnnError(
            "no systems given: make-study generated=DIR_OR_GLOB references=DIR_OR_GLOB (or system.NAME=...)"
        )
    for name in systems:
        if not SYSTEM_NAME.match(name):
            raise MusicrnnError(f"system name {name!r}: use letters, digits, '_' and '-'")
    human = {"references"} & set(systems) if human is None else set(human)
    if unknown := sorted(human - set(systems)):
        raise MusicrnnError(f"human={','.join(unknown)}: no such system (systems: {', '.join(systems)})")
    if not clip_seconds > 0:
        raise MusicrnnError(f"clip_seconds must be positive, got {clip_seconds}")
    if (out / STUDY_FILE).exists():
        raise MusicrnnError(f"{out} already holds a study ({STUDY_FILE}); choose another out= or delete it")

    rng = random.Random(seed)
    chosen: dict[str, list[Path]] = {}
    for name, sources in systems.items():
        files = list(dict.fromkeys(f for source in sources for f in expand_sources(name, source)))
        if max_per_system is not None and len(files) > max_per_system:
            files = sorted(rng.sample(files, max_per_system))
        chosen[name] = files
    if reason := audio_unavailable_reason():  # before reading a possibly large set of files
        raise AudioUnavailable(reason)
    notes = {(name, f): read_clip_notes(f) for name, files in chosen.items() for f in files}
    ids = _opaque_ids(len(notes))

    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=out, prefix=".rendering-") as scratch:
            scratch = Path(scratch)
            clips = []
            for (name, source), piece in notes.items():
                clip_id = ids.pop()
                seconds = render_clip(
                    piece,
                    scratch / "midi" / f"{clip_id}.mid",
                    scratch / "audio" / f"{clip_id}.wav",
                    seconds=clip_seconds,
                    program=program,
                )
                clips.append(Clip(clip_id, name, str(source), f"audio/{clip_id}.wav", round(seconds, 3)))
            for sub in ("audio", "midi"):
                (out / sub).mkdir(exist_ok=True)
                for path in (scratch / sub).iterdir():
                    shutil.move(path, out / sub / path.name)
    except BaseException:
        if created and not any(out.iterdir()):
            out.rmdir()
        raise
    rng.shuffle(clips)  # study.json's order says nothing about the systems either
    study = Study(
        folder=out,
        study_id=secrets.token_hex(8),
        clip_seconds=float(clip_seconds),
        ask_human_or_machine=ask_human_or_machine,
        systems=[System(name, list(sources), name in human) for name, sources in systems.items()],
        clips=clips,
    )
    study.save()
    return study


def _opaque_ids(count: int) -> list[str]:
    ids: set[str] = set()
    while len(ids) < count:
        ids.add(secrets.token_hex(6))
    return list(ids)
