"""Helpers to run the project's own conf/ snippets under real shippers in tests."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # tests/test_shippers/shippers.py -> the checkout
CONF = ROOT / "conf"
PACKAGED_COMMAND = "/usr/bin/anthropic-compliance-input"
PACKAGED_CONFIG = "/etc/anthropic-compliance-input/config.toml"


def wrapper(tmp: Path) -> Path:
    """A stand-in for /usr/bin/anthropic-compliance-input that runs this checkout."""
    path = tmp / "anthropic-compliance-input"
    path.write_text(f"#!/bin/sh\nexec {sys.executable} -m anthropic_compliance_input \"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def snippet(name: str, command: Path, config: Path) -> str:
    """A conf/ snippet with only the two packaged paths swapped for the test's."""
    text = (CONF / name).read_text()
    assert PACKAGED_COMMAND in text and PACKAGED_CONFIG in text, name
    return text.replace(PACKAGED_COMMAND, str(command)).replace(PACKAGED_CONFIG, str(config))


def find_binary(name: str, *extra: str) -> str | None:
    for candidate in (shutil.which(name), *extra):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None
