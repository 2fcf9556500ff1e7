"""Record fidelity: what the API sends is what the shipper gets — extra fields and unknown types
unchanged, byte for byte; invalid records to the dead-letter file. (The record checks and the
encoder on their own: test_schema.py.)"""

from __future__ import annotations

import json
import os
import stat
import time

from helpers import Plugin


def test_extra_fields_and_unknown_types_pass_unchanged(plugin: Plugin, model, now):
    odd = {
        "type": "brand_new_activity_type", "zeta_field": {"nested": [1, 2.5, None, True]},
        "id": "activity_01ZZZunknownTypeRecord0001",
        # milliseconds, as the API may write them, an hour back (inside the first run's lookback)
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.123Z", time.gmtime(now - 3600)),
        "actor": {"type": "quantum_actor", "qubit": "ψ", "user_agent": None},
        "organization_id": None, "alpha": "ünïcødé ✓", "big": 12345678901234567890,
    }
    model.add(odd)
    normal = model.generate(5, now - 7200, now - 120)
    result = plugin.run()
    assert result.rc == 0
    by_id = {r["id"]: line for r, line in zip(result.lines, result.stdout.splitlines())}
    assert json.loads(by_id[odd["id"]]) == odd
    assert list(json.loads(by_id[odd["id"]])) == list(odd)  # key order kept
    assert by_id[odd["id"]] == json.dumps(odd, separators=(",", ":"), ensure_ascii=False).encode()
    for r in normal:
        assert json.loads(by_id[r["id"]]) == r


def test_invalid_records_go_to_the_dead_letter_file_and_the_run_goes_on(plugin: Plugin, model, now):
    good = model.generate(20, now - 7200, now - 120)
    no_id = model.factory.make(now - 3000)
    del no_id["id"]
    bad_time = model.factory.make(now - 2000)
    bad_time["created_at"] = "yesterday at noon"
    no_actor_type = model.factory.make(now - 1000)
    no_actor_type["actor"] = {"email_address": "x@example.com"}
    model.add(no_id, sort_key=(now - 3000, "activity_zz_noid"))
    model.add(bad_time, sort_key=(now - 2000, bad_time["id"]))
    model.add(no_actor_type)

    result = plugin.run()
    assert result.rc == 0
    assert sorted(result.ids) == sorted(r["id"] for r in good)
    assert "rejected=3" in result.stderr and result.stderr.count("rejected activity") == 3
    dead = [json.loads(line) for line in plugin.rejected_path.read_text().splitlines()]
    assert [d["activity"] for d in dead] == [no_id, bad_time, no_actor_type]
    assert "id: Field required" in dead[0]["reason"]
    assert "created_at" in dead[1]["reason"] and "actor.type" in dead[2]["reason"]
    assert stat.S_IMODE(os.stat(plugin.rejected_path).st_mode) == 0o600
    # re-read in the overlap window next time, but not dead-lettered twice
    assert plugin.run().rc == 0
    assert len(plugin.rejected_path.read_text().splitlines()) == 3


def test_an_id_with_a_newline_cannot_forge_a_log_line(plugin: Plugin, model, now):
    """Found by an audit: ids from the API reach the log (a rejected record names its id); a
    newline in one wrote a second, forged line into syslog or the log file."""
    forged = model.factory.make(now - 1000)
    forged["id"] = "activity_01x\n2026-01-01T00:00:00Z ERROR forged line\x1b[2J"
    forged["actor"] = {}  # rejected: the log names its id
    model.add(forged, sort_key=(now - 1000, "activity_01x"))
    model.generate(3, now - 7200, now - 120)
    result = plugin.run()
    assert result.rc == 0 and len(result.ids) == 3
    lines = result.stderr.splitlines()
    assert not [line for line in lines if line.startswith("2026-01-01T00:00:00Z ERROR forged")], result.stderr
    assert any("activity_01x\\n2026-01-01T00:00:00Z ERROR forged line\\x1b[2J" in line for line in lines)
    assert "\x1b" not in result.stderr
