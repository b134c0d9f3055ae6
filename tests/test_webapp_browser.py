"""The web app of Chapter 11 end to end in a real browser: Debian's headless Chromium, driven by selenium through
Debian's chromedriver, against ``demucs-course serve`` on a free loopback port with one worker process.

Sign up, log out, log in, upload a song (the network slowed down so that the progress bar is seen moving), wait for
the separation, play a stem, play the mix and move a mixer slider (Web Audio), download the zip, delete the job.
The screenshots go to a temporary folder, or to ``$UNMIX_SCREENSHOTS`` (the chapter's come from
``UNMIX_SCREENSHOTS=chapters/images/11_shipping pytest tests/test_webapp_browser.py``).

Without Chromium or chromedriver the test is skipped with the reason, except in CI (``UNMIX_CI`` set), where they
are required: ``course.sh`` installs both (``apt-get install chromium chromium-driver``).
"""

import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest

from demucs_course import SOURCES

pytest.importorskip("fastapi", reason="the web app's tests need the package's web extra")

from demucs_course.webapp.client import start_server  # noqa: E402

from webapp_support import PASSWORD, write_song  # noqa: E402


def _missing(why: str):
    if os.environ.get("UNMIX_CI"):
        pytest.fail(why + " (required in CI: UNMIX_CI is set)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium under selenium, downloads into a temporary folder (``browser.downloads``)."""
    try:
        from selenium import webdriver
    except ImportError:
        _missing("selenium is not installed: pip install -r requirements.txt")
    chromium = next(filter(None, map(shutil.which, ("chromium", "google-chrome", "google-chrome-stable"))), None)
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        _missing("no Chromium and chromedriver for the browser test: `apt-get install chromium chromium-driver` on "
                 "Debian (course.sh does it)")
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900",
                     "--autoplay-policy=no-user-gesture-required", "--disable-gpu", "--mute-audio"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.downloads = downloads
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    service = start_server(tmp_path_factory.mktemp("browser-service"), workers=1, env={"OMP_NUM_THREADS": "1"})
    yield service
    assert service.stop() == 0, service.output()


def _wait(driver, condition, timeout=60.0, what="the page"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, f"{what} within {timeout:g} s")


def test_sign_up_upload_listen_mix_download_delete_in_chromium(browser, server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    shots = Path(os.environ.get("UNMIX_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    find = browser.find_element

    def shoot(name):
        browser.save_screenshot(str(shots / f"{name}.png"))

    def fill(email, password):
        find(By.ID, "email").send_keys(email)
        find(By.ID, "password").send_keys(password)

    # sign up, log out, log in
    browser.get(f"{server.url}/signup")
    fill("listener@example.com", PASSWORD)
    shoot("signup")
    find(By.ID, "submit").click()
    _wait(browser, lambda d: d.current_url.endswith("/jobs"), what="the list of songs after sign-up")
    find(By.ID, "logout").click()
    _wait(browser, lambda d: d.current_url.endswith("/login"), what="the log-in page after log-out")
    fill("listener@example.com", "a wrong password")
    find(By.ID, "submit").click()
    _wait(browser, lambda d: "wrong e-mail address or password" in find(By.ID, "auth-error").text,
          what="the error of a wrong password")
    find(By.ID, "password").clear()
    find(By.ID, "password").send_keys(PASSWORD)
    shoot("login")
    find(By.ID, "submit").click()
    _wait(browser, lambda d: d.current_url.endswith("/jobs"), what="the list of songs after log-in")

    # upload, on a slow network: the progress bar moves
    song = write_song(tmp_path / "my song.wav", 6.0)                          # about 1 MB
    browser.set_network_conditions(offline=False, latency=5, download_throughput=10 << 20, upload_throughput=300 << 10)
    find(By.ID, "file").send_keys(str(song))
    find(By.ID, "upload").click()
    progress = find(By.ID, "upload-progress")
    _wait(browser, lambda d: 0.2 < float(progress.get_attribute("value")) < 0.9, what="the upload's progress bar")
    shoot("upload")
    _wait(browser, lambda d: "/jobs/" in d.current_url, timeout=120, what="the job's page after the upload")
    browser.delete_network_conditions()
    _wait(browser, lambda d: find(By.ID, "job").get_attribute("data-status") == "done", timeout=120,
          what="the separation")
    assert [row.get_attribute("data-stem") for row in browser.find_elements(By.CSS_SELECTOR, "tr.stem")] == list(SOURCES)

    # play a stem
    playing = ("const a = document.getElementById('player-vocals'); a.play(); "
               "return [a.paused, a.currentTime, a.error && a.error.code];")
    browser.execute_script(playing)
    _wait(browser, lambda d: d.execute_script("const a = document.getElementById('player-vocals'); "
                                              "return !a.paused && a.currentTime > 0.2;"), what="the vocals playing")
    browser.execute_script("document.getElementById('player-vocals').pause();")

    # the mix: four stems through Web Audio gains; the drums slider down to 0
    find(By.ID, "mix-play").click()
    _wait(browser, lambda d: find(By.ID, "mix-state").text == "playing", what="the mix playing")
    assert browser.execute_script("return window.unmixMixer.context.state;") == "running"
    assert browser.execute_script("return Object.keys(window.unmixMixer.gains).sort();") == sorted(SOURCES)
    slider = find(By.ID, "gain-drums")
    slider.click()
    slider.send_keys(Keys.HOME)                                               # the slider's lowest value
    _wait(browser, lambda d: find(By.ID, "gain-drums-value").text == "0.00", what="the drums slider at 0")
    gains = browser.execute_script("const g = window.unmixMixer.gains; return Object.fromEntries("
                                   "Object.entries(g).map(([k, v]) => [k, v.gain.value]));")
    assert gains == {"drums": 0, "bass": 1, "other": 1, "vocals": 1}
    browser.set_window_size(1200, 1300)
    browser.execute_script("window.scrollTo(0, 0);")
    shoot("job")
    browser.set_window_size(1200, 900)
    find(By.ID, "mix-stop").click()

    # the zip
    find(By.ID, "zip").click()
    archive = _wait(browser, lambda d: next((p for p in browser.downloads.glob("*.zip")), None),
                    what="the zip download")
    time.sleep(0.5)
    assert sorted(zipfile.ZipFile(archive).namelist()) == sorted(f"{name}.wav" for name in SOURCES)

    # the list of songs, and deleting one
    browser.get(f"{server.url}/jobs")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr")
    assert len(rows) == 1 and "my song.wav" in rows[0].text and "done" in rows[0].text
    shoot("jobs")
    find(By.CSS_SELECTOR, "button.delete").click()
    browser.switch_to.alert.accept()
    _wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr"), what="the row deleted")
    browser.refresh()
    assert browser.find_elements(By.ID, "no-jobs")
    assert sorted(path.name for path in shots.glob("*.png")) == ["job.png", "jobs.png", "login.png", "signup.png",
                                                                 "upload.png"]
