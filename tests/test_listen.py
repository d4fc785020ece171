"""musicrnn-listen: making a study, the rating server and its store, the statistics, the CLI.

The server, store and statistics tests use a study of short sine-tone WAVs (they test what happens to
ratings, not how clips sound, and run without FluidSynth); the tests of `make-study` render real MIDI,
written here with miditoolkit, and skip without FluidSynth. The page itself is driven in a real browser in
test_listen_browser.py.
"""

from __future__ import annotations

import csv
import http.client
import json
import math
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest

from musicrnn.cli.listen import main
from musicrnn.listen import stats
from musicrnn.listen.clips import cut_notes
from musicrnn.listen.server import create_app, running
from musicrnn.listen.store import ASPECTS, Rating, RatingStore
from musicrnn.listen.study import Clip, Study, System, make_study
from musicrnn.midi.io import notes_from_columns, read_midi
from tests.helpers import REPO, needs_fluidsynth, write_piece

TOKEN = "results-token-for-tests"


# ---------------------------------------------------------------------------------------------- helpers


def tone_study(folder: Path, clips: dict[str, str], *, human: set[str] = frozenset({"bach"})) -> Study:
    """A study whose clips (id -> system) are 0.3 s sine tones, one pitch per clip."""
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    rate = 8000
    for k, clip_id in enumerate(clips):
        samples = (0.3 * np.sin(2 * np.pi * (220 + 40 * k) * np.arange(int(0.3 * rate)) / rate) * 32767).astype(
            np.int16
        )
        with wave.open(str(folder / "audio" / f"{clip_id}.wav"), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(rate)
            handle.writeframes(samples.tobytes())
    systems = list(dict.fromkeys(clips.values()))
    study = Study(
        folder=folder,
        study_id="study-for-tests",
        clip_seconds=20.0,
        ask_human_or_machine=True,
        systems=[System(name, [f"{name}/"], name in human) for name in systems],
        clips=[
            Clip(clip_id, system, f"{system}/{clip_id}.mid", f"audio/{clip_id}.wav", 0.3)
            for clip_id, system in clips.items()
        ],
    )
    study.save()
    return study


FOUR_CLIPS = {"c0a1": "model", "c0b2": "model", "c1a3": "bach", "c1b4": "bach"}


def call(
    url: str,
    method: str = "GET",
    body: object = None,
    *,
    data: bytes | None = None,
    headers: dict | None = None,
    timeout: float = 20,
):
    """(status, parsed JSON or raw bytes) of one request; HTTP errors are answers, not exceptions."""
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, payload, kind = response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as error:
        status, payload, kind = error.code, error.read(), error.headers.get_content_type()
    return status, json.loads(payload) if kind == "application/json" else payload


def full_rating(participant_id: str, clip_id: str, **overrides) -> dict:
    return {
        "participant_id": participant_id,
        "clip_id": clip_id,
        "harmony": 4,
        "creativity": 3,
        "coherence": 5,
        "overall": 4,
        "guess": "human",
        **overrides,
    }


@pytest.fixture
def tones(tmp_path) -> Study:
    return tone_study(tmp_path / "study", FOUR_CLIPS)


@pytest.fixture
def client(tones):
    store = RatingStore(tones.database)
    app = create_app(tones, store, results_token=TOKEN)
    return app.test_client(), store


@pytest.fixture
def live(tones):
    store = RatingStore(tones.database)
    with running(create_app(tones, store, results_token=TOKEN), threads=8) as url:
        yield url, store


# ------------------------------------------------------------------------------------------ the clips


def test_a_clip_starts_at_the_first_note_and_ends_at_the_cut():
    notes = notes_from_columns([60, 64, 67, 72], [1.5, 2.0, 5.0, 9.0], [3.0, 8.0, 6.0, 10.0], program=40)
    notes["is_drum"][3] = True
    cut = cut_notes(notes, 5.0, program=0)
    assert list(cut["pitch"]) == [60, 64, 67]  # 72 starts 7.5 s after the first note: cut off
    assert list(cut["start"]) == [0.0, 0.5, 3.5] and list(cut["end"]) == [1.5, 5.0, 4.5]
    assert list(cut["program"]) == [0, 0, 0]
    drums = notes_from_columns([36, 38], [0.0, 1.0], [0.1, 1.1], program=40)
    drums["is_drum"] = True
    assert list(cut_notes(drums, 5.0, program=0)["program"]) == [40, 40]  # drums keep their kit


@pytest.fixture(scope="module")
def midi_sets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("listen_midi")
    for k in range(2):
        write_piece(root / "generated" / f"sample{k}.mid", seed=k, num_bars=2, with_drums=False)
        write_piece(root / "references" / "deep" / f"chorale{k}.mid", seed=10 + k, num_bars=2)
        write_piece(root / "other" / f"piece{k}.midi", seed=20 + k, num_bars=2, tempo_change=False)
    return root


@pytest.mark.slow  # renders with the fluidsynth program (a subprocess per clip)
@needs_fluidsynth
def test_make_study_renders_every_file_under_an_opaque_id(midi_sets, tmp_path):
    study = make_study(
        {"generated": [str(midi_sets / "generated" / "*.mid")], "references": [str(midi_sets / "references")]},
        tmp_path / "study",
        clip_seconds=2.0,
        program=0,
    )
    assert sorted(c.system for c in study.clips) == ["generated", "generated", "references", "references"]
    assert [s.human for s in study.systems] == [False, True]  # references are the human system by default
    ids = [clip.id for clip in study.clips]
    assert len(set(ids)) == len(ids)  # one id per clip
    for clip in study.clips:
        assert re.fullmatch(r"[0-9a-f]{12}", clip.id), clip.id  # 12 hex digits (48 random bits)
        assert Path(clip.source).stem.lower() not in clip.id and clip.system not in clip.id
    # Random, not derived from the file: the same files made into another study get other ids.
    again = make_study(
        {"generated": [str(midi_sets / "generated" / "*.mid")]}, tmp_path / "again", clip_seconds=0.5, program=0
    )
    assert sorted(Path(c.source) for c in again.clips) == sorted(
        Path(c.source) for c in study.clips if c.system == "generated"
    )
    assert not {c.id for c in again.clips} & set(ids)
    for clip in study.clips:
        assert clip.audio == f"audio/{clip.id}.wav"
        with wave.open(str(study.folder / clip.audio)) as handle:
            seconds = handle.getnframes() / handle.getframerate()
        assert (
            seconds == pytest.approx(clip.seconds, abs=1e-3) and 2.0 <= seconds < 2.0 + 5
        )  # the clip plus its release tail
        cut = read_midi(study.folder / "midi" / f"{clip.id}.mid", include_drums=True)
        assert cut["start"].min() == pytest.approx(0.0) and cut["end"].max() <= 2.0 + 1e-3
        assert set(cut["program"][~cut["is_drum"]]) == {0}
    for sub, suffix in (("audio", ".wav"), ("midi", ".mid")):  # what the server can hand out: named by id only
        assert sorted(p.name for p in (study.folder / sub).iterdir()) == sorted(f"{i}{suffix}" for i in ids)
    reloaded = Study.load(study.folder)
    assert reloaded.clips == study.clips and reloaded.systems == study.systems


@pytest.mark.slow  # renders with the fluidsynth program (a subprocess per clip)
@needs_fluidsynth
def test_make_study_cli_takes_several_named_systems(midi_sets, tmp_path, capsys):
    main(
        [
            "make-study",
            f"system.lstm={midi_sets / 'generated'}",
            f"system.other={midi_sets / 'other' / '*.midi'}",
            f"references={midi_sets / 'references'}",
            "human=references,other",
            "max_per_system=1",
            "clip_seconds=1.5",
            f"out={tmp_path / 'study'}",
        ]
    )
    study = Study.load(tmp_path / "study")
    assert [(s.name, s.human) for s in study.systems] == [("lstm", False), ("other", True), ("references", True)]
    assert sorted(c.system for c in study.clips) == ["lstm", "other", "references"]  # max_per_system=1
    assert "wrote 3 clips" in capsys.readouterr().out


# ------------------------------------------------------------------------------------ CLI errors: one line


def _one_line_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("musicrnn-listen: error: ") and "Traceback" not in err
    return err


def test_cli_errors_are_one_line(tmp_path, capsys, midi_sets):
    out = f"out={tmp_path / 'study'}"
    assert "no such folder" in _one_line_error(capsys, ["make-study", f"generated={tmp_path / 'missing'}", out])
    assert "matches no MIDI files" in _one_line_error(capsys, ["make-study", f"generated={tmp_path}/*.mid", out])
    assert "unknown setting 'colour'" in _one_line_error(capsys, ["make-study", "colour=red", out])
    assert "out= is missing" in _one_line_error(capsys, ["make-study", f"generated={midi_sets / 'generated'}"])
    assert "not key=value" in _one_line_error(capsys, ["make-study", "generated"])
    assert "human=bach: no such system" in _one_line_error(
        capsys, ["make-study", f"generated={midi_sets / 'generated'}", "human=bach", out]
    )
    assert "not a whole number" in _one_line_error(capsys, ["serve", str(tmp_path), "port=eighty"])
    assert "is not a study" in _one_line_error(capsys, ["serve", str(tmp_path)])
    assert "study folder not found" in _one_line_error(capsys, ["results", str(tmp_path / "nowhere")])
    assert "required" in _one_line_error(capsys, [])


def test_missing_fluidsynth_stops_make_study_in_one_line(tmp_path, capsys, midi_sets, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    err = _one_line_error(capsys, ["make-study", f"generated={midi_sets / 'generated'}", f"out={tmp_path / 'study'}"])
    assert "fluidsynth" in err and not (tmp_path / "study").exists()


@needs_fluidsynth
def test_a_corrupt_midi_file_stops_make_study_before_rendering(tmp_path, capsys, midi_sets):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "bad.mid").write_bytes(b"MThd\x00\x00\x00\x06 not really MIDI")
    err = _one_line_error(
        capsys,
        [
            "make-study",
            f"generated={midi_sets / 'generated'}",
            f"references={tmp_path / 'broken'}",
            f"out={tmp_path / 'study'}",
        ],
    )
    assert "bad.mid" in err and not (tmp_path / "study").exists()


@pytest.mark.slow  # a subprocess
def test_the_installed_command_exits_1_without_a_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "musicrnn.cli.listen",
            "make-study",
            f"generated={tmp_path / 'missing'}",
            f"out={tmp_path / 's'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"musicrnn-listen: error: system generated: {tmp_path / 'missing'}: no such folder or file"
    ]


# ---------------------------------------------------------------------------------------------- the store


def test_the_same_participant_and_clip_again_updates_instead_of_duplicating(tmp_path):
    store = RatingStore(tmp_path / "ratings.sqlite")
    participant = store.add_participant(["a", "b"])
    assert store.save(Rating(participant, "a", 4, 3, 5, 4, "human")) == 1
    assert store.save(Rating(participant, "a", 2, 2, 2, 2, None)) == 1
    assert store.ratings() == [Rating(participant, "a", 2, 2, 2, 2, None)]
    with sqlite3.connect(tmp_path / "ratings.sqlite") as db:
        assert db.execute("SELECT COUNT(*), MAX(revisions) FROM ratings").fetchone() == (1, 2)
        with pytest.raises(sqlite3.IntegrityError):  # the schema itself refuses a score outside 1-5
            db.execute("INSERT INTO ratings VALUES (?, 'b', 6, 1, 1, 1, NULL, 'now', 'now', 1)", (participant,))
    with pytest.raises(sqlite3.IntegrityError):  # and a participant it does not know
        store.save(Rating("p-nobody", "a", 1, 1, 1, 1))
    assert RatingStore(tmp_path / "ratings.sqlite").ratings() == [Rating(participant, "a", 2, 2, 2, 2, None)]


# -------------------------------------------------------------------------------------- bad input: 4xx


@pytest.mark.parametrize(
    "change, status, message",
    [
        ({"harmony": 6}, 400, "harmony must be a whole number from 1 to 5, got 6"),
        ({"creativity": 0}, 400, "creativity must be a whole number from 1 to 5, got 0"),
        ({"coherence": "4"}, 400, "coherence must be a whole number from 1 to 5, got '4'"),
        ({"overall": 4.0}, 400, "overall must be a whole number from 1 to 5, got 4.0"),
        ({"overall": True}, 400, "overall must be a whole number from 1 to 5, got True"),
        ({"harmony": None}, 400, "harmony must be a whole number"),
        ({"guess": "robot"}, 400, "guess must be one of human, machine or null"),
        ({"system": "model"}, 400, "unknown field(s): system"),
        ({"clip_id": "nosuchclip"}, 404, "unknown clip id 'nosuchclip'"),
        ({"clip_id": "../study.json"}, 404, "unknown clip id"),
        ({"participant_id": "p-nobody"}, 404, "unknown participant id 'p-nobody'"),
        ({"participant_id": 7}, 400, "participant_id must be a non-empty string"),
    ],
)
def test_bad_ratings_are_refused_and_nothing_is_stored(client, change, status, message):
    http, store = client
    participant = http.post("/api/participants").get_json()["participant_id"]
    response = http.post("/api/ratings", json={**full_rating(participant, "c0a1"), **change})
    assert response.status_code == status and message in response.get_json()["error"]
    assert store.ratings() == []


def test_a_missing_score_a_non_object_body_and_an_oversized_body_are_refused(client):
    http, store = client
    participant = http.post("/api/participants").get_json()["participant_id"]
    body = full_rating(participant, "c0a1")
    del body["coherence"]
    assert http.post("/api/ratings", json=body).get_json()["error"].startswith("coherence is missing")
    for raw in (b"[1, 2]", b"not json", b""):
        response = http.post("/api/ratings", data=raw, content_type="application/json")
        assert response.status_code == 400 and "JSON object" in response.get_json()["error"]
    assert (
        http.post("/api/ratings", data=json.dumps(full_rating(participant, "c0a1"))).status_code == 400
    )  # no JSON content type
    huge = json.dumps({**full_rating(participant, "c0a1"), "note": "x" * 100_000})
    response = http.post("/api/ratings", data=huge, content_type="application/json")
    assert response.status_code == 413 and "too large" in response.get_json()["error"]
    assert http.get("/api/participants/p-nobody").status_code == 404
    assert store.ratings() == []


def test_the_page_and_the_api_never_name_a_system_or_a_source(client, tones):
    http, _ = client
    state = http.post("/api/participants").get_json()
    assert sorted(state["clips"]) == sorted(FOUR_CLIPS) and state["rated"] == {}
    texts = [
        http.get("/").get_data(as_text=True),
        json.dumps(state),
        http.get("/static/listen.js").get_data(as_text=True),
    ]
    for text in texts:
        assert "model" not in text and "bach" not in text and ".mid" not in text


@pytest.mark.slow  # serves
def test_audio_is_served_only_by_listed_id_over_the_real_server(live, tones):
    url, _ = live
    status, payload = call(f"{url}/audio/c0a1")
    assert status == 200 and payload[:4] == b"RIFF"
    host, port = url.removeprefix("http://").split(":")
    attempts = [
        "/audio/../study.json",
        "/audio/..%2fstudy.json",
        "/audio/%2e%2e%2fstudy.json",
        "/audio/%2E%2E/%2E%2E/etc/passwd",
        "/audio/audio%2fc0a1.wav",
        "/audio/c0a1.wav",
        "/audio/study.json",
        "/audio/",
        "/static/..%2f..%2fstudy.py",
        "/static/../study.json",
        "/../study.json",
    ]
    for path in attempts:
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", path)  # sent as written: no client-side normalisation of ".."
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert response.status in (400, 404), path
        assert b"study_id" not in body and b"RIFF" not in body and b"root:" not in body, path


def test_results_need_the_token(client):
    http, _ = client
    for path in ("/results", "/api/results"):
        assert http.get(path).status_code == 401
        assert "token printed" in http.get(path).get_json()["error"]
        assert http.get(f"{path}?token=guess").status_code == 403
        assert http.get(path, headers={"Authorization": "Bearer guess"}).status_code == 403
        assert http.get(f"{path}?token={TOKEN}").status_code == 200
    assert http.get("/api/results", headers={"Authorization": f"Bearer {TOKEN}"}).get_json()["clips"] == 4


# ------------------------------------------------------------------------------ concurrency and restarts


@pytest.mark.slow  # serves
@pytest.mark.timeout(120)
def test_twenty_simultaneous_listeners_each_rating_stored_exactly_once(live, tones):
    url, store = live
    listeners = 20
    start = threading.Barrier(listeners, timeout=30)

    def listener(k: int) -> tuple[str, dict[str, dict]]:
        start.wait()  # all twenty begin together
        status, state = call(f"{url}/api/participants", "POST")
        assert status == 201
        final = {}
        for n, clip_id in enumerate(state["clips"]):
            body = full_rating(
                state["participant_id"],
                clip_id,
                harmony=1 + (k + n) % 5,
                overall=1 + k % 5,
                guess=["human", "machine", None][(k + n) % 3],
            )
            assert call(f"{url}/api/ratings", "POST", body)[0] == 200
            final[clip_id] = body
        again = {**final[state["clips"][0]], "creativity": 1 + (k * 3) % 5}  # a second thought: an update
        assert call(f"{url}/api/ratings", "POST", again)[0] == 200
        final[state["clips"][0]] = again
        return state["participant_id"], final

    began = time.monotonic()
    with ThreadPoolExecutor(listeners) as pool:
        results = list(pool.map(listener, range(listeners)))
    assert time.monotonic() - began < 60
    stored = store.ratings()
    assert len(stored) == listeners * len(FOUR_CLIPS) == len({(r.participant_id, r.clip_id) for r in stored})
    assert store.participant_count() == listeners
    expected = {(p, c): Rating(**{**body}) for p, final in results for c, body in final.items()}
    assert {(r.participant_id, r.clip_id): r for r in stored} == expected


def _start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "musicrnn.cli.listen", "serve", str(folder), "port=0", f"token={TOKEN}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    line = process.stdout.readline()  # "musicrnn-listen: serving ... at http://127.0.0.1:PORT/"
    assert " at http://127.0.0.1:" in line, line
    return process, line.rsplit(" at ", 1)[1].strip().rstrip("/")


@pytest.mark.slow  # serves, in subprocesses
@pytest.mark.timeout(120)
def test_a_killed_and_restarted_server_has_lost_no_rating(tones):
    process, url = _start_server(tones.folder)
    try:
        sent = {}
        for _ in range(3):
            state = call(f"{url}/api/participants", "POST")[1]
            for n, clip_id in enumerate(state["clips"][:3]):
                body = full_rating(state["participant_id"], clip_id, harmony=1 + n, guess=None)
                assert call(f"{url}/api/ratings", "POST", body)[0] == 200
                sent[(state["participant_id"], clip_id)] = Rating(**body)
    finally:
        process.send_signal(signal.SIGKILL)  # no shutdown, no cleanup: right after the last answer
        process.wait(timeout=30)
    process, url = _start_server(tones.folder)
    try:
        participant, clip_id = next(iter(sent))
        state = call(f"{url}/api/participants/{participant}")[1]
        assert len(state["rated"]) == 3 and state["rated"][clip_id]["harmony"] == sent[(participant, clip_id)].harmony
        assert call(f"{url}/api/ratings", "POST", full_rating(participant, clip_id, harmony=5))[0] == 200
        sent[(participant, clip_id)] = Rating(**full_rating(participant, clip_id, harmony=5))
        results = call(f"{url}/api/results?token={TOKEN}")[1]
        listeners = len({p for p, _ in sent})
        assert (results["participants"], results["listeners"], results["ratings"]) == (listeners, listeners, len(sent))
        assert sum(s["ratings"] for s in results["summaries"] if s["aspect"] == "overall") == len(sent)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    stored = RatingStore(tones.database).ratings()
    assert {(r.participant_id, r.clip_id): r for r in stored} == sent and len(stored) == len(sent) == 3 * 3


# --------------------------------------------------------------------------------------------- statistics

STATS_CLIPS = {"m1": "model", "m2": "model", "b1": "bach", "b2": "bach"}
STATS_RATINGS = [  # (participant, clip, harmony, creativity, coherence, overall, guess)
    ("p1", "m1", 4, 3, 5, 4, "machine"),
    ("p1", "m2", 5, 2, 4, 4, "human"),
    ("p1", "b1", 3, 4, 4, 5, "human"),
    ("p1", "b2", 4, 4, 5, 5, "human"),
    ("p2", "m1", 2, 2, 3, 2, "machine"),
    ("p2", "m2", 3, 1, 2, 2, "machine"),
    ("p2", "b1", 5, 5, 5, 5, None),
    ("p2", "b2", 4, 3, 4, 4, "machine"),
    ("p3", "m1", 1, 2, 2, 1, None),
    ("p3", "b1", 4, 4, 3, 4, "machine"),  # p3 stopped after two clips
]
T_975 = {2: 4.302652730, 4: 2.776445105}  # Student t quantiles (by degrees of freedom) from a table
Z_975 = NormalDist().inv_cdf(0.975)  # 1.959964: the normal quantile of a 95% interval


def t_interval(values: list[float]) -> tuple[float, float]:
    """The 95% t interval of the mean, by hand: mean ± t(n-1) · s / √n."""
    n, mean = len(values), sum(values) / len(values)
    half = T_975[n - 1] * math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) / math.sqrt(n)
    return mean - half, mean + half


def wilson_interval(correct: int, n: int) -> tuple[float, float]:
    """Wilson's 95% score interval for `correct` of `n`: (p + z²/2n ± z·√(p(1-p)/n + z²/4n²)) / (1 + z²/n)."""
    p, z = correct / n, Z_975
    centre, half = p + z**2 / (2 * n), z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return (centre - half) / (1 + z**2 / n), (centre + half) / (1 + z**2 / n)


def test_statistics_match_hand_computed_values(tmp_path):
    study = tone_study(tmp_path, STATS_CLIPS)
    ratings = [Rating(*row) for row in STATS_RATINGS]
    rows = {(s.system, s.aspect): s for s in stats.summarize(study, ratings)}

    harmony = rows["model", "harmony"]  # ratings 4, 5, 2, 3, 1
    assert (harmony.ratings, harmony.listeners) == (5, 3)
    assert harmony.mean == pytest.approx(3.0)
    half = T_975[4] * math.sqrt(10 / 4) / math.sqrt(5)  # squared deviations sum to 10
    assert (harmony.ci_low, harmony.ci_high) == pytest.approx((3.0 - half, 3.0 + half))
    assert harmony.share_good == pytest.approx(2 / 5)
    # per listener: p1 (4+5)/2 = 4.5, p2 (2+3)/2 = 2.5, p3 1 -> mean 8/3, sample variance 37/12
    half = T_975[2] * math.sqrt(37 / 12) / math.sqrt(3)
    assert (harmony.listener_ci_low, harmony.listener_ci_high) == pytest.approx((8 / 3 - half, 8 / 3 + half))

    overall = rows["bach", "overall"]  # ratings 5, 5, 5, 4, 4
    assert overall.mean == pytest.approx(4.6) and overall.share_good == 1.0
    half = T_975[4] * math.sqrt(1.2 / 4) / math.sqrt(5)
    assert (overall.ci_low, overall.ci_high) == pytest.approx((4.6 - half, 4.6 + half))

    identified = {i.system: i for i in stats.identification(study, ratings)}
    # model is machine-made: answers machine, human, machine, machine (p3 was not sure) -> 3 of 4 right
    assert (identified["model"].answers, identified["model"].correct, identified["model"].rate) == (4, 3, 0.75)
    # bach is human: human, human, machine, machine (p2's b1 not sure) -> 2 of 4 right
    assert (identified["bach"].answers, identified["bach"].correct, identified["bach"].rate) == (4, 2, 0.5)
    assert (identified["model"].ci_low, identified["model"].ci_high) == pytest.approx(wilson_interval(3, 4))
    assert (identified["bach"].ci_low, identified["bach"].ci_high) == pytest.approx(wilson_interval(2, 4))


def test_statistics_of_one_rating_and_of_none():
    assert stats.mean_ci([4])[0] == 4 and all(math.isnan(x) for x in stats.mean_ci([4])[1:])
    assert all(math.isnan(x) for x in stats.mean_ci([]))
    assert stats.mean_ci([3, 3, 3]) == (3.0, 3.0, 3.0)


def test_results_command_prints_and_writes_markdown_csv_and_chart(tmp_path, capsys):
    study = tone_study(tmp_path / "study", STATS_CLIPS)
    store = RatingStore(study.database)
    participants = {p: store.add_participant(list(STATS_CLIPS)) for p in ("p1", "p2", "p3")}
    for p, clip, *scores, guess in STATS_RATINGS:
        store.save(Rating(participants[p], clip, *scores, guess))
    main(["results", str(study.folder)])
    printed = capsys.readouterr().out
    shown = lambda interval, form="{:.2f}": "[" + ", ".join(form.format(x) for x in interval) + "]"
    # model's harmony ratings 4, 5, 2, 3, 1 (by listener 4.5, 2.5, 1); bach's overall 5, 5, 5, 4, 4; model
    # identified as machine-made 3 times of 4 (see test_statistics_match_hand_computed_values)
    ratings, listeners = shown(t_interval([4, 5, 2, 3, 1])), shown(t_interval([4.5, 2.5, 1]))
    assert f"| model | harmony | 3.00 | {ratings} | {listeners} | 5 | 3 | 40% |" in printed
    assert f"| bach | overall | 4.60 | {shown(t_interval([5, 5, 5, 4, 4]))} |" in printed
    assert f"| model | machine | 4 | 75% | {shown(wilson_interval(3, 4), '{:.0%}')} |" in printed
    out = study.folder / "results"
    assert (out / "results.md").read_text() in printed
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 2 * len(ASPECTS)
    model_harmony = next(r for r in rows if (r["system"], r["aspect"]) == ("model", "harmony"))
    assert float(model_harmony["mean"]) == 3.0 and float(model_harmony["identification_rate"]) == 0.75
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_without_ratings_is_one_clear_line(tones, capsys):
    RatingStore(tones.database)
    assert "holds no ratings yet" in _one_line_error(capsys, ["results", str(tones.folder)])
