"""The listening page in a real browser: Debian's chromium, headless, driven by playwright.

Playwright's own browser download is not used (it needs network access): the tests launch the system's
chromium through `executable_path` and skip, saying why, when it or the playwright package is missing, or
when FluidSynth is (the clips are rendered from real MIDI files written here).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from musicrnn.listen import stats
from musicrnn.listen.server import create_app, running
from musicrnn.listen.store import ASPECTS, Rating, RatingStore
from musicrnn.listen.study import make_study
from musicrnn.midi.audio import audio_unavailable_reason
from tests.helpers import write_piece

CHROMIUM = os.environ.get("MUSICRNN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
TOKEN = "browser-test-token"

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

pytestmark = [
    pytest.mark.slow,  # serves, and drives a browser
    pytest.mark.skipif(
        sync_playwright is None, reason="the playwright package is not installed (pip install -e '.[test]')"
    ),
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium to drive (apt-get install chromium, or set MUSICRNN_CHROMIUM)"
    ),
    pytest.mark.skipif(audio_unavailable_reason() is not None, reason=str(audio_unavailable_reason())),
    pytest.mark.timeout(120),
]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("listen_browser")
    for k in range(2):
        write_piece(root / "generated" / f"sample{k}.mid", seed=k, num_bars=1, with_drums=False)
        write_piece(root / "references" / f"chorale{k}.mid", seed=10 + k, num_bars=1, with_drums=False)
    return make_study(
        {"generated": [str(root / "generated")], "references": [str(root / "references")]},
        root / "study",
        clip_seconds=2.0,
    )


@pytest.fixture
def server(study, tmp_path):
    store = RatingStore(tmp_path / "ratings.sqlite")  # each test its own ratings
    with running(create_app(study, store, results_token=TOKEN)) as url:
        yield url, store


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--autoplay-policy=no-user-gesture-required"]
        )
        yield browser
        browser.close()


def current_clip(page) -> str:
    """The clip the page is playing: its opaque id, as the page itself knows it."""
    return page.locator("#player").get_attribute("data-clip-id")


def rate(page, scores: dict[str, int], guess: str | None) -> None:
    for aspect, value in scores.items():
        page.locator(f"input[name={aspect}][value='{value}']").check()
    page.locator(f"input[name=guess][value='{guess or ''}']").check()
    page.locator("#submit").click()


def test_a_listener_rates_every_clip_and_the_store_and_results_match(server, study, browser):
    url, store = server
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    expect(page.locator("#participant")).to_have_text(re.compile(r"^p-[0-9a-f]{16}$"))
    expect(page.locator("#progress")).to_have_text(f"Clip 1 of {len(study.clips)} · 0 of {len(study.clips)} rated")
    participant = page.locator("#participant").inner_text()
    assert participant.startswith("p-")
    html = page.content()  # blind: no system and no file name anywhere on the page
    assert "references" not in html and not any(Path(c.source).stem in html for c in study.clips)

    clicked: dict[str, Rating] = {}
    for n in range(len(study.clips)):
        clip_id = current_clip(page)
        # The browser fetched and decoded the clip's WAV: the audio is really there to be heard.
        page.wait_for_function("() => document.getElementById('player').duration > 1.9", timeout=10_000)
        scores = {aspect: 1 + (n + k) % 5 for k, aspect in enumerate(ASPECTS)}
        guess = ["human", "machine", None][n % 3]
        rate(page, scores, guess)
        clicked[clip_id] = Rating(participant, clip_id, guess=guess, **scores)
        expect(page.locator("#progress")).to_contain_text(f"{n + 1} of {len(study.clips)} rated")
    expect(page.locator("#done")).to_be_visible()
    assert sorted(clicked) == sorted(c.id for c in study.clips)  # every clip once, in the page's own order

    assert {r.clip_id: r for r in store.ratings()} == clicked

    # The results page shows what the statistics of exactly these ratings are.
    expected = {(s.system, s.aspect): s for s in stats.summarize(study, list(clicked.values()))}
    page.goto(f"{url}/results?token={TOKEN}")
    cells = page.locator("#summary tr").all_inner_texts()[1:]
    shown = {tuple(row.split("\t")[:2]): row.split("\t")[2] for row in cells}
    assert shown == {key: f"{s.mean:.2f}" for key, s in expected.items()}
    assert page.goto(f"{url}/results").status == 401
    context.close()


def test_a_listener_who_comes_back_continues_and_can_change_a_rating(server, study, browser):
    url, store = server
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    expect(page.locator("#progress")).to_contain_text("0 of")
    participant = page.locator("#participant").inner_text()
    first = current_clip(page)
    page.locator("#submit").click()  # nothing chosen yet: the page asks, nothing is sent
    expect(page.locator("#message")).to_have_text("Please rate harmony (1 to 5) before going on.")
    assert store.ratings() == []
    rate(page, {"harmony": 2, "creativity": 3, "coherence": 4, "overall": 5}, "machine")
    expect(page.locator("#progress")).to_contain_text("1 of")
    page.close()

    page = context.new_page()  # the listener returns later in the same browser
    page.goto(url)
    expect(page.locator("#progress")).to_have_text(f"Clip 2 of {len(study.clips)} · 1 of {len(study.clips)} rated")
    assert page.locator("#participant").inner_text() == participant
    page.locator("#back").click()
    assert current_clip(page) == first
    expect(page.locator("input[name=coherence][value='4']")).to_be_checked()  # their rating, shown back
    expect(page.locator("input[name=guess][value='machine']")).to_be_checked()
    rate(page, {"harmony": 2, "creativity": 3, "coherence": 4, "overall": 1}, None)
    expect(page.locator("#progress")).to_contain_text("Clip 2 of")
    assert store.ratings() == [Rating(participant, first, 2, 3, 4, 1, None)]  # updated, not duplicated
    context.close()

    fresh = browser.new_context()  # another browser: another anonymous listener
    page = fresh.new_page()
    page.goto(url)
    expect(page.locator("#progress")).to_contain_text("0 of")
    assert page.locator("#participant").inner_text() not in ("", participant, "…")
    fresh.close()


def test_screenshot_of_the_page(server, browser, tmp_path):
    url, _ = server
    page = browser.new_page(viewport={"width": 900, "height": 1100})
    page.goto(url)
    expect(page.locator("#progress")).to_contain_text("0 of")
    page.locator("input[name=harmony][value='4']").check()
    path = Path(os.environ.get("MUSICRNN_LISTEN_SCREENSHOT") or tmp_path / "page.png")
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.close()
