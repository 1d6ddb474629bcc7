"""Take the README's picture of a report (docs/report.png) in the same headless Chromium as the
browser tests, shrunk to a palette PNG so that the repository stays small.

    python scripts/screenshot_report.py data/demo/report.html [--out docs/report.png] [--account ACC-000123]

With --account, the account's detail is open beside the portfolio.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

from PIL import Image

from healthscore.errors import BrowserMissing
from healthscore.io import atomic_path
from healthscore.report.browser import console_errors, open_browser

MAX_BYTES = 300_000


def screenshot(report: Path, out: Path, account: str | None, width: int, height: int, scale: float) -> int:
    """Write the PNG; returns its size in bytes."""
    with tempfile.TemporaryDirectory() as profile:
        driver = open_browser(profile, width, height)
        try:
            driver.get(report.resolve().as_uri())
            if driver.execute_script("return document.body.dataset.ready") != "true":
                raise RuntimeError(f"{report}: the page did not finish drawing: {console_errors(driver)}")
            if account:
                row = driver.execute_script("""
                    const q = document.getElementById('filter-text');
                    q.value = arguments[0]; q.dispatchEvent(new Event('input'));
                    return document.querySelector('#table-body tr.row');""", account)
                if row is None:
                    raise RuntimeError(f"{report}: no account {account!r}")
                row.click()
                driver.execute_script("window.scrollTo(0, 0)")
            png = driver.get_screenshot_as_png()
        finally:
            driver.quit()
    picture = Image.open(io.BytesIO(png)).convert("RGB")
    picture = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.LANCZOS)
    for colours in (256, 128, 64):  # fewer colours until it fits
        buffer = io.BytesIO()
        picture.quantize(colours, method=Image.Quantize.MEDIANCUT).save(buffer, "PNG", optimize=True)
        if buffer.tell() <= MAX_BYTES:
            break
    with atomic_path(out) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return buffer.tell()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a report written by `healthscore report`")
    parser.add_argument("--out", type=Path, default=Path("docs/report.png"))
    parser.add_argument("--account", help="open this account's detail")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=0.75, help="shrink factor of the saved picture")
    args = parser.parse_args()
    try:
        size = screenshot(args.report, args.out, args.account, args.width, args.height, args.scale)
    except (BrowserMissing, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: {size / 1000:.0f} KB")
    return 0 if size <= MAX_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
