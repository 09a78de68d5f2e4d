"""The report in a real browser: headless Chromium renders it to a PNG.

Slow (a browser start); skipped when `chromium` is not on PATH (`apt-get install chromium`)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from PIL import Image

from report.build import build
from report.config import ReportConfig
from tests.support.report import write_fake_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(html_path, png_path, profile, width=1400, height=3000) -> None:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--screenshot={png_path}",
        f"--window-size={width},{height}",
        html_path.resolve().as_uri(),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not on PATH")
def test_report_renders_in_chromium(tmp_path):
    out = write_fake_run(tmp_path / "out", runs=("tiny-loss",))
    html_path = build(ReportConfig(out_dir=out, run=["tiny-loss"], dpi=60))
    png = tmp_path / "shot.png"
    screenshot(html_path, png, tmp_path / "profile")
    image = Image.open(png).convert("RGB")
    assert image.size == (1400, 3000)
    small = image.resize((140, 300))
    pixels = list(small.getdata())
    white = sum(1 for p in pixels if min(p) > 245)
    # A blank or failed page is (nearly) all white; tables, text and the embedded figures are not.
    assert white / len(pixels) < 0.9
    assert len(set(pixels)) > 200
    # The embedded figures decoded: the kept-lines green of the corpus figure is on the page.
    assert any(abs(r - 0x2B) < 12 and abs(g - 0x8A) < 12 and abs(b - 0x3E) < 12 for r, g, b in image.getdata())
