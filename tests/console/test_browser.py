"""The console in a real browser: headless Chromium (Debian's) driven through WebDriver, JavaScript
off. Logs in with an auditor token, filters the trail, marks a break-glass use reviewed, downloads
the disclosures CSV, and takes the screenshots docs/console.md shows (``UPDATE_SCREENSHOTS=1``
copies them to docs/img/)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait
from tests.conftest import REPO, Database, Service, start_service
from tests.console.conftest import (
    AUDITOR,
    PATIENT_A,
    PATIENT_B,
    break_glass,
    disclosure,
    write,
)  # fmt: skip

CHROMEDRIVER = shutil.which("chromedriver")
# About 12 s on 2 cores: inside `make test`, not slow. `make test` installs Debian's chromium and
# chromium-driver (Makefile APT_PACKAGES), so in CI a missing driver fails rather than skips.
pytestmark = pytest.mark.skipif(
    CHROMEDRIVER is None and not os.environ.get("CI"), reason="apt-get install chromium-driver"
)
SHOTS = REPO / "docs" / "img"


@pytest.fixture(scope="module")
def console(
    module_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    write(module_database, [
        break_glass("doctor-1", PATIENT_A),
        break_glass("doctor-2", PATIENT_B, "cardiac arrest on arrival, history needed"),
        disclosure(PATIENT_A, "bulk-export", types=["Observation"], count="12", export_id="e-1"),
        disclosure(PATIENT_A, "ai-summary", model="summary-model", provider="ai.example"),
    ])  # fmt: skip
    service = start_service(module_database, tmp_path_factory.mktemp("browser") / "svc.log")
    yield service
    service.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,760",
                 "--disable-dev-shm-usage"):  # fmt: skip
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(tmp_path),
        "download.prompt_for_download": False,
        "profile.managed_default_content_settings.javascript": 2,  # the console needs none
    })  # fmt: skip
    assert CHROMEDRIVER is not None, "chromium-driver is not installed (make sysdeps)"
    driver = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(tmp_path)})  # fmt: skip
    try:
        yield driver
    finally:
        driver.quit()


def replaced(driver: webdriver.Chrome, element: WebElement) -> None:
    """Wait for the page holding ``element`` to be replaced (a form was submitted).

    Selenium's ``staleness_of`` only expects a stale-element error; Chromium may instead answer
    that the node "does not belong to the document" when asked during the navigation."""

    def gone(_driver: webdriver.Chrome) -> bool:
        try:
            element.is_enabled()
        except WebDriverException:  # stale, or no longer in the document
            return True
        return False

    WebDriverWait(driver, 10).until(gone)


def shot(driver: webdriver.Chrome, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"console-{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 1000
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SHOTS.mkdir(exist_ok=True)
        shutil.copy(path, SHOTS / path.name)


def test_an_auditor_uses_the_console_in_chromium(console: Service, browser: webdriver.Chrome,
                                                 tmp_path: Path) -> None:  # fmt: skip
    # localhost: a browser keeps Secure cookies from it over plain HTTP (a trustworthy origin).
    base = console.base_url.replace("127.0.0.1", "localhost")
    browser.get(f"{base}/console/")  # no session: sent to the login page
    assert browser.current_url.endswith("/console/login?reason=required")
    token = browser.find_element(By.ID, "token")
    assert browser.find_element(By.CSS_SELECTOR, "label[for=token]").text
    shot(browser, tmp_path, "login")
    token.send_keys(AUDITOR, Keys.ENTER)  # keyboard only
    replaced(browser, token)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Audit trail"

    Select(browser.find_element(By.ID, "f-break_glass")).select_by_value("yes")
    who = browser.find_element(By.ID, "f-who")
    who.send_keys("doctor-2", Keys.ENTER)
    replaced(browser, who)
    rows = browser.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 1
    assert "doctor-2" in rows[0].text
    shot(browser, tmp_path, "trail")

    browser.get(f"{base}/console/break-glass")
    assert "cardiac arrest on arrival" in browser.page_source
    shot(browser, tmp_path, "break-glass")
    note = browser.find_elements(By.TAG_NAME, "textarea")[0]
    note.send_keys("Confirmed with the ward: emergency admission")
    note.find_element(By.XPATH, "./ancestor::form//button").click()
    replaced(browser, note)
    assert browser.current_url.endswith("/console/break-glass")
    assert "Confirmed with the ward" in browser.page_source
    assert len(browser.find_elements(By.TAG_NAME, "textarea")) == 1

    browser.get(f"{base}/console/disclosures")
    field = browser.find_element(By.ID, "f-patient")
    field.send_keys(PATIENT_A, Keys.ENTER)
    replaced(browser, field)
    assert "bulk-export" in browser.page_source
    shot(browser, tmp_path, "disclosures")
    browser.find_element(By.LINK_TEXT, "Download CSV").click()
    csv_file = tmp_path / f"disclosures-{PATIENT_A}.csv"
    deadline = time.monotonic() + 20
    while not csv_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = csv_file.read_text().splitlines()
    assert lines[0].startswith("date_utc,kind,recipient")
    assert len(lines) == 1 + 3  # two disclosures and one break-glass read of patient A
