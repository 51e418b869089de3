"""The console in a real browser: Debian's headless Chromium (/usr/bin/chromium) driven by Selenium through
Debian's chromedriver (/usr/bin/chromedriver), both given by path so that Selenium Manager never looks for
or downloads a browser or a driver of its own.

One browser serves the whole session (it takes a second or two to start); each test signs in afresh.
Screenshots go to $DATA_DIR/screens, or to a temporary folder, whose path is printed at the end of the run;
with UPDATE_DOCS_SCREENS=1 the main screens are copied to docs/screens/ as well (that is how the README's
pictures are made). A failing test leaves a screenshot of what the page showed (failed-<test>.png)."""
import os

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.browser.helpers import CHROMEDRIVER, CHROMIUM, Console, screens_dir

CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--lang=en-US", "--window-size=1280,800"]
os.environ.setdefault("SE_OFFLINE", "true")   # Selenium Manager, should anything call it: never the network


def require_chromium():
    """Skip without Chromium on a developer's machine; under CI (CI set) its absence is a failure, since
    scripts/setup.sh --with-postgres (what `make test` runs first) installs it."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    if not missing:
        return
    reason = (f"{' and '.join(missing)} missing: `bash scripts/setup.sh --with-postgres` installs Debian's chromium "
              "and chromium-driver")
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter):
    if screens_dir(create=False) is not None:
        terminalreporter.write_line(f"console screenshots: {screens_dir()}")


def start_chromium(tmp_path_factory):
    """A headless Chromium with its own profile and downloads folder: (driver, downloads)."""
    require_chromium()
    downloads = tmp_path_factory.mktemp("console-downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver, downloads


@pytest.fixture(scope="session")
def chromium(tmp_path_factory):
    driver, downloads = start_chromium(tmp_path_factory)
    yield driver, downloads
    driver.quit()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def console_of(driver, downloads, request, name):
    """The Console on `driver` for one test; afterwards, a screenshot if the test failed, and the check that
    the page logged no error."""
    for leftover in downloads.iterdir():
        leftover.unlink()
    yield Console(driver, downloads)
    # What the page showed when a test failed is the first thing to look at.
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        Console(driver, downloads).shot(f"failed-{request.node.name}{name}")
    # A script error or a refused script, style or image (the content security policy) is a failure too;
    # the API's refusals (4xx) the page expects are logged as "network" errors and are not.
    page_errors = [entry["message"] for entry in driver.get_log("browser") if entry.get("source") != "network"]
    driver.get("about:blank")
    assert not page_errors, page_errors


@pytest.fixture
def console(chromium, request):
    yield from console_of(*chromium, request, "")


@pytest.fixture
def second_console(tmp_path_factory, request):
    """A second browser, for a story with two people signed in at once (each keeps their own session)."""
    driver, downloads = start_chromium(tmp_path_factory)
    try:
        yield from console_of(driver, downloads, request, "-second")
    finally:
        driver.quit()
