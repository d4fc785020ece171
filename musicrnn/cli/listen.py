"""`musicrnn-listen`: make a listening study, serve its page, compute its results.

    musicrnn-listen make-study generated='samples/*.mid' references=chorales/ clip_seconds=20 out=study/
    musicrnn-listen make-study system.lstm=eval/a/samples system.gru=eval/b/samples references=bach/ out=study/
    musicrnn-listen serve study/ [host=127.0.0.1] [port=8000]
    musicrnn-listen results study/

Settings are key=value, like the project's Hydra commands; argparse only picks the subcommand (a Hydra
app has no subcommands).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from musicrnn.cli.errors import errors_as_one_line
from musicrnn.errors import MusicrnnError

COMMAND = "musicrnn-listen"
SYSTEM_PREFIX = "system."
COMMON_SYSTEMS = ("generated", "references")  # shorthands for system.generated= and system.references=
MAKE_STUDY_SETTINGS = ("out", "clip_seconds", "human", "program", "max_per_system", "seed", "ask_human_or_machine")
SERVE_SETTINGS = ("host", "port", "threads", "token")
RESULTS_SETTINGS = ("out",)

MAKE_STUDY_HELP = """\
Cut every MIDI file of each system to its first clip_seconds, render it with FluidSynth under an opaque id
and write the study to out=.

  SYSTEM=DIR_OR_GLOB   generated=... and references=... name the two usual systems; system.NAME=... any
                       other (repeat a key to add more folders or globs to one system)
  out=DIR              the study folder (required; must not hold a study yet)
  clip_seconds=20      clip length, from each file's first note
  human=NAMES          comma-separated systems of real music, for the human-or-machine question
                       (default: references)
  program=N            play every non-drum part on General MIDI program N (0 = piano), so the timbre
                       does not give a system away (default: keep the files' instruments)
  max_per_system=N     draw N files at random from a larger system (seed=0)
  ask_human_or_machine=true|false
"""


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line and exit status 1, like every other error of this command."""

    def error(self, message: str):
        print(f"{COMMAND}: error: {message} (see {COMMAND} --help)", file=sys.stderr)
        raise SystemExit(1)


def parse_settings(
    pairs: list[str], allowed: tuple[str, ...], *, systems: bool = False
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(settings, systems) from key=value words; with `systems`, system keys collect their values."""
    settings: dict[str, str] = {}
    named: dict[str, list[str]] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise MusicrnnError(f"{pair!r} is not key=value")
        if systems and (key in COMMON_SYSTEMS or key.startswith(SYSTEM_PREFIX)):
            name = key.removeprefix(SYSTEM_PREFIX)
            if not value:
                raise MusicrnnError(f"{key}= is empty: give a folder or a glob of MIDI files")
            named.setdefault(name, []).append(value)
        elif key in allowed:
            settings[key] = value
        else:
            extra = ", generated, references, system.NAME" if systems else ""
            raise MusicrnnError(f"unknown setting {key!r} (known: {', '.join(allowed)}{extra})")
    return settings, named


def _number(settings: dict[str, str], key: str, kind: type, default):
    if key not in settings or settings[key] == "":
        return default
    try:
        return kind(settings[key])
    except ValueError:
        raise MusicrnnError(f"{key}={settings[key]} is not a {'whole number' if kind is int else 'number'}") from None


def _flag(settings: dict[str, str], key: str, default: bool) -> bool:
    value = settings.get(key, "").strip().lower()
    if value == "":
        return default
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise MusicrnnError(f"{key}={settings[key]}: use true or false")


def make_study_command(pairs: list[str]) -> None:
    from musicrnn.listen.study import make_study

    settings, systems = parse_settings(pairs, MAKE_STUDY_SETTINGS, systems=True)
    if not settings.get("out"):
        raise MusicrnnError("out= is missing: the folder to write the study to")
    human = settings.get("human")
    study = make_study(
        systems,
        settings["out"],
        clip_seconds=_number(settings, "clip_seconds", float, 20.0),
        human=None if human is None else {name.strip() for name in human.split(",") if name.strip()},
        program=_number(settings, "program", int, None),
        max_per_system=_number(settings, "max_per_system", int, None),
        seed=_number(settings, "seed", int, 0),
        ask_human_or_machine=_flag(settings, "ask_human_or_machine", True),
    )
    counts = ", ".join(
        f"{s.name} {sum(c.system == s.name for c in study.clips)}{' (human)' if s.human else ''}" for s in study.systems
    )
    print(f"{COMMAND}: wrote {len(study.clips)} clips ({counts}) to {study.folder}")
    print(f"{COMMAND}: next: {COMMAND} serve {study.folder}")


def serve_command(folder: str, pairs: list[str]) -> None:
    from musicrnn.listen.server import serve

    settings, _ = parse_settings(pairs, SERVE_SETTINGS)
    serve(
        folder,
        host=settings.get("host") or "127.0.0.1",
        port=_number(settings, "port", int, 8000),
        threads=_number(settings, "threads", int, 8),
        token=settings.get("token") or None,
        announce=lambda line: print(line, flush=True),
    )


def results_command(folder: str, pairs: list[str]) -> None:
    from musicrnn.listen import report, stats
    from musicrnn.listen.store import RatingStore
    from musicrnn.listen.study import Study

    settings, _ = parse_settings(pairs, RESULTS_SETTINGS)
    study = Study.load(folder)
    if not study.database.is_file():
        raise MusicrnnError(f"{study.database} does not exist: no one has rated yet ({COMMAND} serve {folder})")
    store = RatingStore(study.database)
    ratings = store.ratings()
    if not ratings:
        raise MusicrnnError(f"{study.database} holds no ratings yet")
    summaries, identifications = stats.summarize(study, ratings), stats.identification(study, ratings)
    out = Path(settings.get("out") or study.folder / "results")
    out.mkdir(parents=True, exist_ok=True)
    text = report.markdown(
        summaries, identifications, participants=len({r.participant_id for r in ratings}), clips=len(study.clips)
    )
    (out / "results.md").write_text(text)
    report.write_csv(summaries, identifications, out / "results.csv")
    report.write_chart(summaries, out / "results.png")
    print(text)
    print(f"{COMMAND}: wrote {out / 'results.md'}, {out / 'results.csv'}, {out / 'results.png'}")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog=COMMAND, description="Blind listening studies: rendered clips, a rating page, the Average Listener Rating."
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="{make-study,serve,results}", parser_class=_OneLineParser
    )
    make = commands.add_parser(
        "make-study",
        help="render MIDI clips of named systems into a study folder",
        description=MAKE_STUDY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    make.add_argument("settings", nargs="*", metavar="key=value")
    serve = commands.add_parser(
        "serve",
        help="serve the rating page (prints the results token)",
        description="Serve the study's rating page; settings: host=127.0.0.1 port=8000 (0: any free port) threads=8 token=(default: random, printed)",
    )
    serve.add_argument("study")
    serve.add_argument("settings", nargs="*", metavar="key=value")
    results = commands.add_parser(
        "results",
        help="print and write the ratings' statistics",
        description="Print the results table and write results.md, results.csv and results.png to out= (default STUDY/results)",
    )
    results.add_argument("study")
    results.add_argument("settings", nargs="*", metavar="key=value")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with errors_as_one_line(COMMAND, FileNotFoundError):
        if args.command == "make-study":
            make_study_command(args.settings)
        elif args.command == "serve":
            serve_command(args.study, args.settings)
        else:
            results_command(args.study, args.settings)


if __name__ == "__main__":
    main()
