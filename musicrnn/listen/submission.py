"""Checking one submitted rating (the JSON body of POST /api/ratings) before anything is stored."""

from __future__ import annotations

from musicrnn.listen.store import ASPECTS, GUESSES, HIGHEST, LOWEST, Rating
from musicrnn.listen.study import Study

FIELDS = ("participant_id", "clip_id", *ASPECTS, "guess")


class InvalidSubmission(Exception):
    """A submission the server refuses: `status` is the HTTP status, the message says why."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def parse_submission(body: object, study: Study) -> Rating:
    """The Rating a body describes, or InvalidSubmission: 400 for a malformed body or score, 404 for a clip
    the study does not list. Whether the participant exists is the store's to say."""
    if not isinstance(body, dict):
        raise InvalidSubmission("the body must be a JSON object (Content-Type: application/json)")
    if unknown := sorted(set(body) - set(FIELDS)):
        raise InvalidSubmission(f"unknown field(s): {', '.join(map(str, unknown))} (expected: {', '.join(FIELDS)})")
    for name in ("participant_id", "clip_id"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise InvalidSubmission(f"{name} must be a non-empty string")
    if study.clip(body["clip_id"]) is None:
        raise InvalidSubmission(f"unknown clip id {body['clip_id']!r}", status=404)
    scores = {aspect: _score(body, aspect) for aspect in ASPECTS}
    guess = body.get("guess")
    if guess is not None:
        if not study.ask_human_or_machine:
            raise InvalidSubmission(
                "this study does not ask whether a clip is by a human or a machine: leave guess out"
            )
        if guess not in GUESSES:
            raise InvalidSubmission(f"guess must be one of {', '.join(GUESSES)} or null, got {guess!r}")
    return Rating(participant_id=body["participant_id"], clip_id=body["clip_id"], guess=guess, **scores)


def _score(body: dict, aspect: str) -> int:
    if aspect not in body:
        raise InvalidSubmission(f"{aspect} is missing: rate {', '.join(ASPECTS)} from {LOWEST} to {HIGHEST}")
    value = body[aspect]
    # bool is an int in Python, and 4.0 or "4" is not what the page sends: all are refused.
    if isinstance(value, bool) or not isinstance(value, int) or not LOWEST <= value <= HIGHEST:
        raise InvalidSubmission(f"{aspect} must be a whole number from {LOWEST} to {HIGHEST}, got {value!r}")
    return value
