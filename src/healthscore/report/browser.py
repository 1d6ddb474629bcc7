"""Headless Chromium for looking at a report as a person would: the browser tests and the README
screenshot drive it through selenium (a development dependency, imported only here).

It is Debian's chromium and chromium-driver (`scripts/install-browser.sh`), never a browser
downloaded at run time, and the page gets no network: host names resolve to nothing, which is
how a report opened from a laptop on a plane must work.
"""

from __future__ import annotations

from pathlib import Path

from healthscore.errors import BrowserMissing

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND")


def open_browser(profile: str | Path, width: int = 1400, height: int = 1000):
    """A selenium WebDriver on a fresh Chromium profile in `profile`, collecting console logs."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        raise BrowserMissing(f"{' and '.join(missing)} not found: run scripts/install-browser.sh (Debian's chromium and "
                             "chromium-driver packages)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise BrowserMissing("selenium is not installed: pip install selenium (the project's dev extra)") from None
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={Path(profile).resolve()}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def console_errors(driver) -> list[str]:
    """The page's console errors since the last call (the log is drained by reading it)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
