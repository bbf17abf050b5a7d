"""What the browser tests share: one Chromium (Debian's, never a downloaded one) for the session."""

from __future__ import annotations

import os
import pathlib

import pytest
from playwright.sync_api import sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHOTS = ROOT / "target" / "browser-screenshots"
CHROMIUM = os.environ.get("FUNNEL_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()
