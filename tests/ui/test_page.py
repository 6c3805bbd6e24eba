"""A person's path through the try-it page, in headless Chromium against the real graph.

Each test leaves a screenshot of the state it reached in tests/ui/artifacts/
(or $UI_SCREENSHOTS).
"""

import base64
import re

import httpx
import numpy as np
import pytest
from selenium.webdriver.common.keys import Keys

from tests.helpers.audio import decode
from tests.ui.conftest import API_KEY, Page

SENTENCES = [
    "The first sentence is short.",
    "The second one takes a little longer to say than the first.",
    "And this is the third.",
]
# WAV durations are exact; the media element rounds to its sample clock.
DURATION_TOLERANCE_S = 0.01


def speak_and_wait(page: Page) -> dict:
    """Click Speak and wait for the file; what the page reported on the way."""
    page.element("speak").click()
    page.wait(lambda: page.text("speak-status").endswith("The file is below."))
    status = page.text("speak-status")
    info = page.text("result-info")
    return {
        "streamed_s": float(re.search(r"Streamed ([\d.]+) s", status).group(1)),
        "first_audio_ms": int(re.search(r"first audio after (\d+) ms", status).group(1)),
        "duration_s": float(re.search(r"Duration ([\d.]+) s", info).group(1)),
    }


def media_duration(page: Page, element_id: str) -> float:
    page.wait(lambda: page.js("return document.getElementById(arguments[0]).readyState >= 1", element_id))
    return page.js("return document.getElementById(arguments[0]).duration", element_id)


def current_caption(page: Page) -> int | None:
    return page.js(
        "const items = [...document.querySelectorAll('#captions li')];"
        "const index = items.findIndex(item => item.classList.contains('current'));"
        "return index < 0 ? null : index;"
    )


def test_the_page_loads_without_a_key_then_lists_voices_with_one(browser, ui_service):
    page = Page(browser, ui_service)
    # The application's own address, as a person would type it, leads to the page under its prefix.
    for address in (ui_service.url, f"{ui_service.url}/", f"{ui_service.url}/ui"):
        browser.get(address)
        assert browser.current_url == f"{ui_service.url}/ui/", address
    page.open()
    assert "espeak" in page.text("service")
    assert page.element("key-section").is_displayed()
    assert page.js("return document.getElementById('voice').options.length") == 0
    page.use_key()
    page.wait(lambda: page.text("key-status") == "The key works.")
    voices = page.js("return [...document.getElementById('voice').options].map(option => option.value)")
    assert {"default", "deep", "bright", "soft", "brisk"} <= set(voices)
    assert page.js("return document.getElementById('voice').value") == "default"
    assert page.js("return document.getElementById('language').value") == "en-us"
    box = page.element("text")
    box.clear()
    box.send_keys("Hello there.")
    assert page.text("count") == "12 / 13,000 characters"
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(" ".join(SENTENCES))
    page.screenshot("01-page-loaded")


def test_speak_streams_then_plays_the_file_with_its_captions_lit(page):
    page.set_text(" ".join(SENTENCES))
    spoken = speak_and_wait(page)
    # The streamed audio went to the speakers through Web Audio, and was all of the file.
    assert page.js("return state.context.state") == "running"
    assert page.js("return state.context.currentTime") > 0
    assert 0 < spoken["first_audio_ms"] < 10_000
    assert spoken["streamed_s"] == pytest.approx(spoken["duration_s"], abs=0.05)
    # The file's player is as long as the service said (X-Audio-Duration of that request).
    assert spoken["duration_s"] > 2
    assert media_duration(page, "player") == pytest.approx(spoken["duration_s"], abs=DURATION_TOLERANCE_S)
    download = page.element("download")
    assert download.get_attribute("href").startswith("blob:")
    assert download.get_attribute("download") == "voicegraph-default.wav"
    captions = [item.text for item in page.driver.find_elements("css selector", "#captions li")]
    assert [re.sub(r"^\d+:\d+\.\d\s*", "", caption) for caption in captions] == SENTENCES
    # A caption plays from its start, and the highlight follows the audio to the next one.
    page.driver.find_elements("css selector", "#captions button")[1].click()
    page.wait(lambda: page.js("const p = document.getElementById('player'); return !p.paused && p.currentTime > 0"))
    assert current_caption(page) == 1
    # The word being said is underlined, inside the lit caption.
    page.wait(lambda: page.js("return document.querySelector('#captions li.current .word.spoken') !== null"))
    page.screenshot("02-speaking-captions", scroll_to="speak-status")
    page.wait(lambda: current_caption(page) == 2, timeout=20)
    page.wait(lambda: page.js("return document.getElementById('player').ended"), timeout=20)


def test_clone_from_an_uploaded_file_then_speak_listen_and_delete(page, reference_clip, ui_service):
    page.element("clone-file").send_keys(str(reference_clip))
    page.wait(lambda: page.element("clone-preview").is_displayed())
    assert page.js("return document.getElementById('clone-name').value") == "reference"
    assert media_duration(page, "clone-preview") > 3
    name = page.element("clone-name")
    name.clear()
    name.send_keys("UI Test Voice")
    page.element("clone").click()
    page.wait(lambda: page.text("clone-status").startswith("Cloned"))
    assert page.js("return document.getElementById('voice').value") == "ui_test_voice"
    clone = page.driver.find_element("css selector", "#clones li[data-voice='ui_test_voice']")
    assert "usable" in clone.text
    clone.find_element("xpath", ".//button[text()='Listen to the sample']").click()
    sample = clone.find_element("tag name", "audio")
    page.wait(lambda: sample.is_displayed() and page.js("return arguments[0].currentTime > 0", sample))
    page.set_text("Now in the voice I was given.")
    spoken = speak_and_wait(page)
    assert media_duration(page, "player") == pytest.approx(spoken["duration_s"], abs=DURATION_TOLERANCE_S)
    assert page.element("download").get_attribute("download") == "voicegraph-ui_test_voice.wav"
    page.screenshot("03-cloned-voice", full_page=True)

    clone.find_element("xpath", ".//button[text()='Delete']").click()
    page.driver.switch_to.alert.accept()
    page.wait(lambda: page.text("clone-status") == "Deleted ui_test_voice.")
    assert "ui_test_voice" not in page.js("return [...document.getElementById('voice').options].map(o => o.value)")
    gone = httpx.get(f"{ui_service.url}/v1/voices/ui_test_voice", headers={"Authorization": f"Bearer {API_KEY}"})
    assert gone.status_code == 404


def test_a_recording_from_the_microphone_becomes_a_wav_to_clone(page):
    page.element("record").click()
    page.wait(lambda: page.text("record-status").startswith("Recording: 4 s"), timeout=10)
    page.element("record").click()
    page.wait(lambda: page.text("record-status").startswith("Recorded"))
    assert page.js("return document.getElementById('clone-name').value") == "recording"
    recorded = page.driver.execute_async_script(
        "const done = arguments[0]; const reader = new FileReader();"
        "reader.onload = () => done(reader.result.split(',')[1]); reader.readAsDataURL(state.reference);"
    )
    pcm, rate = decode(base64.b64decode(recorded))
    assert 4 <= len(pcm) / rate < 6
    assert np.sqrt(np.mean(pcm**2)) > 0.01, "the fake microphone's beep, not silence"
    assert media_duration(page, "clone-preview") == pytest.approx(len(pcm) / rate, abs=DURATION_TOLERANCE_S)


def test_a_long_text_as_a_job_reaches_100_percent_and_plays(page):
    page.set_text(" ".join(SENTENCES * 30))  # about 3,000 characters: several chunks
    page.element("job-submit").click()
    page.wait(lambda: "succeeded" in page.text("job-status") and page.element("job-player").is_displayed())
    status = page.text("job-status")
    assert "(100%)" in status
    value, chunks = page.js("const p = document.getElementById('job-progress'); return [p.value, p.max]")
    assert value == chunks > 1
    duration = float(re.search(r"Duration ([\d.]+) s", status).group(1))
    assert media_duration(page, "job-player") == pytest.approx(duration, abs=DURATION_TOLERANCE_S)
    assert not page.element("job-cancel").is_displayed()
    page.screenshot("04-job-done", scroll_to="jobs-heading")


@pytest.mark.parametrize("case, text, key, code", [
    pytest.param("empty-text", "", API_KEY, "empty_text", id="empty-text"),
    pytest.param("text-too-long", "a" * 13_001, API_KEY, "text_too_long", id="text-too-long"),
    pytest.param("wrong-key", "Hello.", "vg_not-a-key", "invalid_api_key", id="wrong-key"),
])
def test_a_refusal_shows_the_services_own_code_and_message(page, ui_service, case, text, key, code):
    if key != API_KEY:
        page.use_key(key)
    page.set_text(text)
    page.element("speak").click()
    page.wait(lambda: page.element("error").is_displayed())
    # The same request straight to the service: the page shows its answer, not one of its own.
    answer = httpx.post(f"{ui_service.url}/v1/tts/stream", json={"text": text, "voice": "default", "language": "en-us",
                        "speed": 1.0, "format": "pcm"}, headers={"Authorization": f"Bearer {key}"})
    error = answer.json()["error"]
    assert error["code"] == code
    assert page.text("error-code") == code
    assert page.text("error-status") == f"(HTTP {answer.status_code})"
    assert page.text("error-message") == error["message"]
    assert re.fullmatch(r"[\w-]{16,}", page.text("error-request"))
    if case == "text-too-long":
        assert "over" in page.element("count").get_attribute("class")
    if case == "wrong-key":
        assert page.element("key-section").is_displayed()
    page.screenshot(f"05-error-{case}")


def test_phone_width_every_control_labelled_and_speak_by_keyboard(page):
    page.driver.set_window_size(390, 844)
    assert page.js("return document.documentElement.scrollWidth <= window.innerWidth")
    unlabelled = page.js("""
        return [...document.querySelectorAll('input, select, textarea, button')]
            .filter(control => control.offsetParent !== null)
            .filter(control => !(control.labels?.length || control.getAttribute('aria-label')
                                 || (control.tagName === 'BUTTON' && control.textContent.trim())))
            .map(control => control.outerHTML);
    """)
    assert unlabelled == []
    page.set_text(SENTENCES[0])
    page.element("text").click()
    # From the text, the fields in reading order, then Speak, pressed with Enter.
    for expected in ["voice", "language", "format", "speed", "speak"]:
        page.driver.switch_to.active_element.send_keys(Keys.TAB)
        assert page.driver.switch_to.active_element.get_attribute("id") == expected
    page.driver.switch_to.active_element.send_keys(Keys.ENTER)
    page.wait(lambda: page.text("speak-status").endswith("The file is below."))
    assert page.js("return document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot("06-phone-width", full_page=True)
