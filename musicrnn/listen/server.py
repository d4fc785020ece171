"""The listening page and its JSON API (Flask), served by waitress.

    GET  /                          the page (templates/index.html, static/listen.js)
    POST /api/participants          a new anonymous participant with their own random clip order
    GET  /api/participants/<id>     a returning participant: their order and what they rated so far
    POST /api/ratings               one rating (JSON); the same (participant, clip) again replaces it
    GET  /audio/<clip id>           a clip's WAV, only for ids the study lists
    GET  /results?token=...         the results table (also /api/results); the token is printed at start

No response names a clip's system or source file: the page knows clips by their opaque ids only.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from flask import Flask, jsonify, render_template, request, send_file
from werkzeug.exceptions import HTTPException

from musicrnn.errors import MusicrnnError
from musicrnn.listen import stats
from musicrnn.listen.report import CI_NOTE
from musicrnn.listen.store import ASPECTS, RatingStore
from musicrnn.listen.study import Study
from musicrnn.listen.submission import InvalidSubmission, parse_submission

MAX_BODY_BYTES = 16 * 1024  # a rating is ~200 bytes; anything near this is not one


def create_app(study: Study, store: RatingStore, *, results_token: str, max_body_bytes: int = MAX_BODY_BYTES) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes  # larger bodies: 413 before the handler runs
    app.json.sort_keys = False
    # Flask resolves a relative send_file path against the package, not the working directory.
    study_folder = study.folder.resolve()
    clip_ids = [clip.id for clip in study.clips]

    def error(message: str, status: int):
        return jsonify(error=message), status

    @app.errorhandler(HTTPException)
    def http_error(exception: HTTPException):
        message = exception.description or exception.name
        if exception.code == 413:
            message = f"request body too large (at most {max_body_bytes} bytes)"
        return error(message, exception.code or 500)

    @app.errorhandler(InvalidSubmission)
    def invalid_submission(exception: InvalidSubmission):
        return error(str(exception), exception.status)

    @app.after_request
    def no_caching_of_answers(response):
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/")
    def page():
        return render_template(
            "index.html",
            study_id=study.study_id,
            total=len(clip_ids),
            aspects=ASPECTS,
            ask_guess=study.ask_human_or_machine,
            clip_seconds=study.clip_seconds,
        )

    def participant_state(participant_id: str, order: list[str]) -> dict:
        rated = {
            r.clip_id: {**{a: r.score(a) for a in ASPECTS}, "guess": r.guess} for r in store.ratings(participant_id)
        }
        return {"participant_id": participant_id, "clips": order, "rated": rated, "total": len(order)}

    @app.post("/api/participants")
    def new_participant():
        # Each listener hears the clips in their own order, so that order effects (fatigue, the first
        # clip as the anchor) average out over listeners instead of favouring one system.
        order = secrets.SystemRandom().sample(clip_ids, len(clip_ids))
        return jsonify(participant_state(store.add_participant(order), order)), 201

    @app.get("/api/participants/<participant_id>")
    def returning_participant(participant_id: str):
        order = store.clip_order(participant_id)
        if order is None:
            return error(f"unknown participant id {participant_id!r}", 404)
        return jsonify(participant_state(participant_id, order))

    @app.post("/api/ratings")
    def rate():
        rating = parse_submission(request.get_json(silent=True), study)
        if store.clip_order(rating.participant_id) is None:
            return error(f"unknown participant id {rating.participant_id!r}: reload the page to get a new one", 404)
        rated = store.save(rating)
        return jsonify(stored=True, rated=rated, total=len(clip_ids))

    @app.get("/audio/<clip_id>")
    def audio(clip_id: str):
        # The file comes from the study's own list, never from the URL: an id that is not listed (a
        # path, "..", anything else) is simply not found.
        clip = study.clip(clip_id)
        if clip is None:
            return error("no such clip", 404)
        return send_file(
            study_folder / clip.audio,
            mimetype="audio/wav",
            conditional=True,
            download_name=f"{clip.id}.wav",
            max_age=3600,
        )

    def token_refusal():
        given = request.args.get("token") or request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not given:
            return error("the results need the token printed when the server started: /results?token=...", 401)
        if not hmac.compare_digest(given.encode(), results_token.encode()):
            return error("wrong results token", 403)
        return None

    def results_now() -> dict:
        ratings = store.ratings()
        return {
            "participants": store.participant_count(),  # everyone who opened the page
            "listeners": len({r.participant_id for r in ratings}),  # those who rated at least one clip
            "ratings": len(ratings),
            "clips": len(clip_ids),
            "summaries": stats.summarize(study, ratings),
            "identification": stats.identification(study, ratings),
        }

    @app.get("/api/results")
    def results_json():
        if refusal := token_refusal():
            return refusal
        results = results_now()
        results["summaries"] = [_json_safe(asdict(s)) for s in results["summaries"]]
        results["identification"] = [_json_safe(asdict(i)) for i in results["identification"]]
        return jsonify(results)

    @app.get("/results")
    def results_page():
        if refusal := token_refusal():
            return refusal
        return render_template("results.html", note=CI_NOTE, **results_now())

    return app


def _json_safe(row: dict) -> dict:
    """NaN (no data yet) as null: JSON has no NaN."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}


def bind(app: Flask, *, host: str = "127.0.0.1", port: int = 8000, threads: int = 8):
    """A waitress server listening on host:port (port 0: any free port), not yet serving."""
    from waitress.server import create_server

    try:
        # waitress reads a whole body before Flask sees it: cap it too, so a huge upload is refused early.
        return create_server(
            app, host=host, port=port, threads=threads, max_request_body_size=1024 * 1024, ident="musicrnn-listen"
        )
    except OSError as error:
        raise MusicrnnError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def base_urls(server) -> list[str]:
    listening = getattr(server, "effective_listen", None) or [(server.effective_host, server.effective_port)]
    return [f"http://{f'[{h}]' if ':' in str(h) else h}:{p}" for h, p, *_ in listening]


@contextmanager
def running(app: Flask, *, host: str = "127.0.0.1", port: int = 0, threads: int = 8) -> Iterator[str]:
    """Serve `app` on a background thread for the `with` block; yields the base URL (for tests and notebooks)."""
    server = bind(app, host=host, port=port, threads=threads)
    thread = threading.Thread(target=server.run, name="musicrnn-listen", daemon=True)
    thread.start()
    try:
        yield base_urls(server)[0]
    finally:
        # waitress's close() stops listening but its loop runs on while a browser holds a keep-alive
        # connection open: close those too, on the server's own thread (its trigger runs the function
        # between two polls), so the loop ends at once.
        def close_everything():
            for channel in list(server.active_channels.values()):
                channel.handle_close()
            server.close()

        server.trigger.pull_trigger(close_everything)
        thread.join(timeout=10)
        server.task_dispatcher.shutdown()


def serve(
    folder: str | os.PathLike,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    threads: int = 8,
    token: str | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve a study until interrupted, announcing the page's and the results' addresses."""
    study = Study.load(folder)
    store = RatingStore(study.database)
    token = token or secrets.token_urlsafe(16)
    server = bind(create_app(study, store, results_token=token), host=host, port=port, threads=threads)
    systems = ", ".join(s.name for s in study.systems)
    for url in base_urls(server):
        announce(f"musicrnn-listen: serving {Path(folder)} ({len(study.clips)} clips; systems: {systems}) at {url}/")
        announce(f"musicrnn-listen: results: {url}/results?token={token}")
    announce(f"musicrnn-listen: ratings go to {study.database}; Ctrl-C stops")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
