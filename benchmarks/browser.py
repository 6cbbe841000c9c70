"""Debian's chromium, headless, through Playwright: how the tests and the lab's benchmark open a
page. Its launch flags are written here alone."""

from __future__ import annotations

import shutil

# No sandbox: chromium refuses one as root, and containers lack the namespaces it needs. No
# GPU, and none of chromium's own traffic (updates, sync, first-run pages) beside the page.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str:
    """The chromium executable; RuntimeError if there is none (`make test` installs it)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("Debian's chromium is needed (apt-get install chromium)")
    return path


def launch_chromium(playwright):
    """A headless chromium Browser from a started Playwright (sync API); the caller closes it."""
    return playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
