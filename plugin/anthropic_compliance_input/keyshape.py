"""What an Anthropic key looks like: the one place that knows the prefixes.

The config loader refuses a file that holds one, the argument parser redacts one typed on the
command line, and the key commands mask and sanity-check one, all with these definitions.
"""

from __future__ import annotations

import re

MARK = "sk-ant-"
GOOD_PREFIXES = ("sk-ant-api01-", "sk-ant-admin01-")  # Compliance Access Keys, Admin keys
CLAUDE_API_PREFIX = "sk-ant-api03-"  # a Claude API key: the Compliance API refuses it
SIMULATED_KEY = "sk-ant-api01-simulated-key-for-local-tests-only"  # demo, simulate and the tests
_ANYWHERE = re.compile(re.escape(MARK) + r"\S+")


def contains_key(text: str) -> bool:
    return MARK in text


def redact_keys(text: str) -> str:
    return _ANYWHERE.sub("[REDACTED]", text)


def mask(key: str) -> str:
    """The prefix and the last 4 characters; never more."""
    prefix = next((p for p in (*GOOD_PREFIXES, CLAUDE_API_PREFIX, MARK) if key.startswith(p)), "")
    return f"{prefix}…{key[-4:]}" if len(key) > len(prefix) + 8 else "…"


def shape_warning(key: str) -> str | None:
    if key.startswith(GOOD_PREFIXES):
        return None
    if key.startswith(CLAUDE_API_PREFIX):
        return (f"this is a Claude API key ({CLAUDE_API_PREFIX}); the Compliance API rejects it — use a "
                f"Compliance Access Key ({GOOD_PREFIXES[0]}) or an Admin key ({GOOD_PREFIXES[1]})")
    return f"the key does not start with {' or '.join(GOOD_PREFIXES)}; the API will likely reject it"
