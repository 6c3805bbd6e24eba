"""The try-it page in a real headless Chromium against one real local graph.

`make test-ui` runs these; `make test` never collects them (pytest's addopts
ignore tests/ui): they need Debian's chromium and chromium-driver.
"""

import os
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.helpers.local_serve import Service, local_serve
from voicegraph.access.keys import hash_key
from voicegraph.core.settings import Settings

# Keys on, so every call the page makes must carry the key it was given.
API_KEY = "vg_ui-test-key"
# Not "/": the page must find the API relative to itself.
PREFIX = "/voicegraph"
SCREENSHOTS = Path(os.environ.get("UI_SCREENSHOTS") or Path(__file__).parent / "artifacts")
DESKTOP = (1280, 1000)

# Without the background-networking flags Chromium waits on servers an offline machine cannot reach.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
    # A microphone that plays a beep, granted without a prompt.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]


@pytest.fixture(scope="session")
def ui_service(tmp_path_factory) -> Service:
    from ray import serve

    from serve_app.app import build_app

    settings = Settings(
        engine="espeak",
        storage_root=tmp_path_factory.mktemp("ui-storage"),
        synthesizer={"min_replicas": 1, "max_replicas": 1},
        auth={
            "enabled": True,
            # The page polls jobs twice a second beside everything else it asks.
            "limits": {"requests_per_s": 100, "request_burst": 200},
            "keys": [{"name": "ui", "sha256": hash_key(API_KEY)}],
        },
    )
    with local_serve(num_cpus=4) as local:
        serve.run(build_app(settings), name="voicegraph-ui", route_prefix=PREFIX)
        yield Service(local.url + PREFIX, settings.storage_root, settings)


@pytest.fixture(scope="session")
def browser(tmp_path_factory) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=DriverService("/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The page in the browser, and what the tests ask of it."""

    def __init__(self, driver: WebDriver, service: Service):
        self.driver = driver
        self.service = service

    def open(self) -> None:
        self.driver.set_window_size(*DESKTOP)
        self.driver.get(f"{self.service.url}/ui/")
        self.wait(lambda: self.text("service").startswith("Engine"))

    def use_key(self, key: str = API_KEY) -> None:
        field = self.element("api-key")
        field.clear()
        field.send_keys(key)
        self.driver.find_element("css selector", "#key-form button").click()

    def element(self, element_id: str):
        return self.driver.find_element("id", element_id)

    def text(self, element_id: str) -> str:
        return self.element(element_id).text

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def set_text(self, text: str) -> None:
        # As typing would, with the input event the character count listens to; send_keys
        # of thousands of characters would take the test's time.
        self.js(
            "const box = document.getElementById('text'); box.value = arguments[0];"
            "box.dispatchEvent(new Event('input'));",
            text,
        )

    def wait(self, condition, timeout: float = 60):
        return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(lambda _: condition())

    def screenshot(self, name: str, scroll_to: str | None = None, full_page: bool = False) -> Path:
        """The viewport scrolled to `scroll_to`'s top, or the whole page from its top."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        size = self.driver.get_window_size()
        if full_page:
            height = self.js("return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight")
            self.driver.set_window_size(size["width"], height)
            self.js("window.scrollTo(0, 0)")
        elif scroll_to:
            self.js("arguments[0].scrollIntoView({block: 'start'})", self.element(scroll_to))
        self.driver.save_screenshot(str(path))
        if full_page:
            self.driver.set_window_size(size["width"], size["height"])
        return path


@pytest.fixture
def page(browser, ui_service) -> Page:
    """The page, loaded afresh and given the key; fails the test on any script error the page logged."""
    browser.get_log("browser")  # what earlier tests left
    page = Page(browser, ui_service)
    page.open()
    page.use_key()
    page.wait(lambda: page.text("key-status") == "The key works.")
    yield page
    # Failed fetches (a 4xx the page shows) are logged by the network; scripts must log nothing.
    problems = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE" and entry["source"] != "network"]
    assert not problems, problems
