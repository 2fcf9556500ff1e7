"""A version 1 state (one JSON file) becomes a version 2 state (SQLite) on the first run, once,
with a backup, and collection carries on exactly where it was: nothing repeated, nothing lost."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
from helpers import Plugin, assert_one_line_error

from anthropic_compliance_input.timeutil import epoch, format_rfc3339


def v1_state(records: list[dict], delivered: int, overlap: float = 300.0,
             late: tuple[str, ...] = ("anthropic_access", "cmek_preserve")) -> dict:
    """What release 0.1 wrote after delivering the oldest `delivered` records."""
    ordered = sorted(records, key=lambda r: (epoch(r["created_at"]), r["id"]))
    done = ordered[:delivered]
    high = epoch(done[-1]["created_at"])
    return {
        "version": 1,
        "cursor": {"origin": format_rfc3339(epoch(ordered[0]["created_at"]) - 60), "high_water": format_rfc3339(high)},
        "seen": {r["id"]: epoch(r["created_at"]) for r in done if epoch(r["created_at"]) >= high - overlap},
        "late_seen": {r["id"]: epoch(r["created_at"]) for r in done if r["type"] in late},
        "stats": {"emitted": delivered, "rejected": 0, "pages": 3, "retries": 1, "runs": 2,
                  "last_success": format_rfc3339(high + 60), "newest_activity": done[-1]["created_at"],
                  "last_request_id": "req_1", "last_error": None, "last_error_at": None},
    }


@pytest.mark.parametrize("layout", ["same-path", "json-twin-of-db"])
def test_a_version_1_state_is_migrated_once_with_a_backup(plugin: Plugin, model, now, layout):
    records = model.generate(400, now - 3600, now - 120)
    doc = v1_state(records, delivered=250)
    legacy = plugin.state_path.with_suffix(".json")
    if layout == "same-path":  # a config that still names default.json
        plugin.state_path = legacy
        plugin.configure(state={"path": str(legacy)})
    legacy.parent.mkdir(parents=True, exist_ok=True)
    legacy.write_text(json.dumps(doc))

    shown = plugin.state()  # state show reads a version 1 file without migrating it
    assert shown["high_water"] == doc["cursor"]["high_water"] and legacy.read_text() == json.dumps(doc)

    first = plugin.run()
    assert first.rc == 0, first.stderr
    assert first.stderr.count("migrated from version 1") == 1
    delivered_before = {r["id"] for r in sorted(records, key=lambda r: (epoch(r["created_at"]), r["id"]))[:250]}
    assert set(first.ids) == {r["id"] for r in records} - delivered_before  # nothing repeated, nothing lost
    backup = legacy.with_name(legacy.name + ".v1.bak")
    assert json.loads(backup.read_text()) == doc
    with sqlite3.connect(plugin.state_path) as db:
        assert db.execute("SELECT value FROM meta WHERE name = 'version'").fetchone() == ("2",)
    assert not legacy.exists() or layout == "same-path"
    state = plugin.state()
    assert state["totals"]["emitted"] == 250 + len(first.ids) and state["runs"] == 3

    second = plugin.run()
    assert second.rc == 0 and second.ids == [] and "migrated" not in second.stderr


@pytest.mark.parametrize("edit", [
    {"cursor": {"origin": "2026-11-01T00:00:00Z", "high_water": "garbage"}},
    {"cursor": {"origin": "2026-11-01T00:00:00Z", "high_water": 1790000000}},
    {"stats": []},
    {"seen": {"activity_1": "yesterday"}},
    {"cursor": {"origin": "2026-11-01T00:00:00Z", "high_water": "9999-12-31T23:59:59Z"}},
])
def test_a_hand_edited_version_1_state_that_still_parses_is_refused_untouched(plugin: Plugin, model, now, edit):
    records = model.generate(20, now - 3600, now - 120)
    doc = {**v1_state(records, delivered=10), **edit}
    legacy = plugin.state_path.with_suffix(".json")
    legacy.parent.mkdir(parents=True, exist_ok=True)
    legacy.write_text(json.dumps(doc))
    before = legacy.read_bytes()
    result = plugin.run()
    assert_one_line_error(result, 65, "unreadable", "state reset")
    assert legacy.read_bytes() == before and not plugin.state_path.exists()
    assert not os.path.exists(str(legacy) + ".v1.bak")


def test_migration_claims_no_more_late_coverage_than_version_1_kept(plugin: Plugin, model, now):
    """Found by an adversarial run: release 0.1 kept late ids for 72 h; the new default is 7 days,
    and the migrated floor must not pretend the 72 h-7 d range was kept."""
    records = model.generate(100, now - 3600, now - 120)
    old_access = model.generate(10, now - 6 * 86400, now - 4 * 86400, kind="anthropic_access")
    doc = v1_state(records, delivered=100)
    doc["cursor"]["origin"] = format_rfc3339(now - 8 * 86400)  # v1 delivered those too, long ago
    legacy = plugin.state_path.with_suffix(".json")
    legacy.parent.mkdir(parents=True, exist_ok=True)
    legacy.write_text(json.dumps(doc))
    result = plugin.run()
    assert result.rc == 0, result.stderr
    assert not set(result.ids) & {r["id"] for r in old_access}


def test_a_version_1_state_from_a_host_days_ahead_is_repaired_not_refused(plugin: Plugin, model):
    """Release 0.1 trusted the host's clock: on a host two days ahead it wrote a cursor and a
    last_success two days ahead of the API's. The run goes back to the newest delivered activity
    (repeats rather than a gap), as the README says; found by an adversarial review to be
    refused (65) by the first cut of the "dates ahead" check."""
    import time

    model.clock_offset = -2 * 86400.0  # the host two days ahead of the API
    api_now = model.clock()
    records = model.generate(100, api_now - 6 * 3600, api_now - 60)
    ordered = sorted(records, key=lambda r: (epoch(r["created_at"]), r["id"]))
    doc = v1_state(records, delivered=60)
    host_now = time.time()
    doc["cursor"]["high_water"] = format_rfc3339(host_now - 60)  # what 0.1 wrote: host now - settle
    doc["stats"]["last_success"] = format_rfc3339(host_now)
    legacy = plugin.state_path.with_suffix(".json")
    legacy.parent.mkdir(parents=True, exist_ok=True)
    legacy.write_text(json.dumps(doc))
    first, second = plugin.run(), plugin.run()
    assert first.rc == 0 and second.rc == 0, second.stderr
    assert "is ahead of the API's clock" in first.stderr + second.stderr  # the first answer shows the skew
    assert {r["id"] for r in ordered[60:]} <= set(first.ids + second.ids)  # nothing lost
    assert plugin.run().ids == []
