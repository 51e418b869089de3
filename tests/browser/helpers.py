"""What the browser tests share: where Chromium and its driver are, the two screen sizes, the screenshots
folder, and `Console`, the browser on the console with the steps and explicit waits the flows use."""
import base64
import os
import re
import shutil
import tempfile
from pathlib import Path

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.e2e.helpers import create_organization, ok, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DESKTOP = (1280, 800)
PHONE = (375, 812)
WAIT_SECONDS = 15
DOCS_SCREENS = Path(__file__).resolve().parents[2] / "docs" / "screens"
# Every control of a screen or dialog: named by a <label> (or aria-label), so screen readers can tell them apart.
UNLABELLED_CONTROLS = """return [...document.querySelectorAll('main input, main select, main textarea, dialog input')]
    .filter((c) => c.type !== 'hidden' && !(c.labels && c.labels.length) && !c.getAttribute('aria-label'))
    .map((c) => c.name || c.outerHTML);"""

_screens_dir = None


def activate(api, org_id):
    """`org_id` made `api`'s user's active organization: the one the console's screens work on."""
    ok(api.put("/v1/me/active-organization", json={"organization_id": org_id}))


def active_organization(console):
    """The header switcher's choice: the active organization as the console names it."""
    return Select(console.find("#organization-switcher")).first_selected_option.text


def link_in_the_email(system, invitation_id):
    """The console link of the invitation's email, as members logged it (the formatter writes its line
    breaks as \\n: the log line is one line)."""
    pattern = re.compile(r"(http://\S+?/console/#/invitations/" + re.escape(invitation_id) + ")")
    log = system.log_dir / "members.log"
    found = wait_for(lambda: pattern.search(log.read_text(errors="replace")), message="the invitation's email")
    return found.group(1)


def owner_of(system, label, organization_name):
    """A new user (`label`) who founded `organization_name`, now their active one: (client, organization id)."""
    owner = system.user(label)
    org = create_organization(owner, organization_name)["id"]
    activate(owner, org)
    return owner, org


def screens_dir(create=True):
    """$DATA_DIR/screens, or a temporary folder; None before the first screenshot when `create` is False."""
    global _screens_dir
    if _screens_dir is None and create:
        data_dir = os.environ.get("DATA_DIR")
        _screens_dir = Path(data_dir) / "screens" if data_dir else Path(tempfile.mkdtemp(prefix="console-screens-"))
        _screens_dir.mkdir(parents=True, exist_ok=True)
    return _screens_dir


class Console:
    """The browser on the console, with the steps and waits the flows share (explicit waits only)."""

    def __init__(self, driver, downloads):
        self.driver, self.downloads = driver, downloads
        # The screens re-render what they show after each change: an element found a moment ago may be gone.
        self.wait = WebDriverWait(driver, WAIT_SECONDS,
                                  ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))

    # ---- the page ----
    def viewport(self, width, height):
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500})

    def sign_in(self, api):
        """Signs in as `api`'s user as an identity provider's redirect would: /console/#token=..."""
        self.driver.get("about:blank")
        self.viewport(*DESKTOP)
        token = api.session.headers["Authorization"].removeprefix("Bearer ")
        self.driver.get(f"{api.base_url}/console/#token={token}")
        self.heading_is("Organizations")

    def go(self, label, heading=None):
        """Opens a screen from the navigation and waits until it has loaded."""
        self.click(label, css="nav a", tag="a")
        self.heading_is(heading or label)

    def heading_is(self, text):
        self.wait.until(lambda d: any(h.text == text for h in d.find_elements(By.CSS_SELECTOR, "main h1")),
                        f"the screen {text!r}")
        self.idle()

    def idle(self):
        """No request under way and no part of the screen still loading."""
        self.wait.until(lambda d: d.find_element(By.ID, "progress").get_attribute("hidden") is not None
                        and not d.find_elements(By.CSS_SELECTOR, "main .loading"), "the page to finish loading")

    # ---- finding and using things ----
    def find(self, css, within=None):
        return self.wait.until(lambda d: (within or d).find_element(By.CSS_SELECTOR, css), css)

    def element_with_text(self, text, css="button", within=None, tag=None):
        root = within or self.driver

        def found(_):
            for element in root.find_elements(By.CSS_SELECTOR, css):
                if element.text.strip() == text and element.is_displayed() and element.is_enabled():
                    return element
            return False
        return self.wait.until(found, f"{tag or css} {text!r}")

    def click(self, text, css="button", within=None, tag=None):
        self.element_with_text(text, css, within, tag).click()

    def fill(self, name, value, within=None):
        control = self.find(f"[name='{name}']", within)
        control.clear()
        control.send_keys(value)
        return control

    def choose(self, name, label, within=None):
        Select(self.find(f"select[name='{name}']", within)).select_by_visible_text(label)

    def dialog(self):
        return self.find("dialog[open]")

    def no_dialog(self):
        self.wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "dialog[open]"), "the dialog to close")

    def text_appears(self, text, css="main", within=None):
        """Waits until `text` is in the element `css`; returns that element's text."""
        root = within or self.driver
        return self.wait.until(lambda d: next((e.text for e in root.find_elements(By.CSS_SELECTOR, css)
                                               if text in e.text), False), f"{text!r} in {css}")

    def error_beside(self, field, within=None):
        """The error shown under the field the API named."""
        slot = self.find(f"[data-field='{field}'] .field-error", within)
        return self.wait.until(lambda _: slot.is_displayed() and slot.text, f"an error beside {field}")

    def row_of(self, text, within=None):
        """The table row (or organization card) that shows `text`."""
        root = within or self.driver
        return self.wait.until(lambda d: next((row for row in root.find_elements(By.CSS_SELECTOR, "tbody tr, li.card")
                                               if text in row.text), False), f"a row with {text!r}")

    # ---- artifacts ----
    def shot(self, name, docs=False):
        """A PNG of the whole page at the current width (below the fold too), into the screenshots folder."""
        path = screens_dir() / f"{name}.png"
        width, height = self.driver.execute_script(
            "return [window.innerWidth, Math.max(window.innerHeight, document.documentElement.scrollHeight)]")
        picture = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
        path.write_bytes(base64.b64decode(picture["data"]))
        if docs and os.environ.get("UPDATE_DOCS_SCREENS"):
            DOCS_SCREENS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS_SCREENS / path.name)
        return path

    def downloaded(self, filename, timeout=WAIT_SECONDS):
        """The file the browser saved as `filename`, once it is complete."""
        path = self.downloads / filename
        partial = self.downloads / f"{filename}.crdownload"
        WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(
            lambda _: path.exists() and not partial.exists(), f"{filename} downloaded")
        return path
