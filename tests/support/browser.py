"""Headless Chromium (Debian's `chromium`) for the report test: the DOM it built, its console, a screenshot.

Installed by scripts/install-test-tools.sh; the fixture that uses it fails with
that hint when it is missing rather than skipping.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--hide-scrollbars"]


def chromium_binary() -> str:
    for name in ("chromium", "chromium-headless-shell", "chromium-browser"):
        if found := shutil.which(name):
            return found
    raise RuntimeError("chromium is not installed — run scripts/install-test-tools.sh (Debian package chromium)")


def run_chromium(page: Path, profile: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Chromium on `page` with a fresh profile in `profile`; stdout and stderr captured."""
    return subprocess.run([chromium_binary(), *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
                          capture_output=True, text=True, timeout=timeout)


def dump_dom(page: Path, profile: Path) -> tuple[str, str]:
    """The DOM after rendering, and what the browser logged (console messages included)."""
    result = run_chromium(page, profile, "--dump-dom", "--enable-logging=stderr", "--v=0")
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, result.stderr


def screenshot(page: Path, profile: Path, png: Path, size: str = "1280,1600") -> None:
    result = run_chromium(page, profile, f"--screenshot={png}", f"--window-size={size}")
    assert result.returncode == 0 and png.exists(), result.stderr[-2000:]
