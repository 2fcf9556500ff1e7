"""The cursor: what a run reads, in which order, and that each activity is delivered once —
backfill, windows, paging by cursor, same-timestamp clusters, late activities, the plugin's own
compliance_api_accessed activities, kill -9, repeats, filters, and the first run / --since."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import Counter

from anthropic_compliance_input import schema
from anthropic_compliance_input.timeutil import format_rfc3339

from helpers import Plugin, child_env

DAY = 86400.0


def test_backfill_of_12345_then_nothing_then_exactly_the_50_new(plugin: Plugin, model, now):
    model.generate(12345, now - 3 * DAY, now - 120)
    plugin.configure(collect={"settle_delay_seconds": 2})

    first = plugin.run()
    assert first.rc == 0, first.stderr
    assert len(first.ids) == 12345 and set(first.ids) == {r["id"] for r in model.all_records()}
    assert all(schema.problem(r) is None for r in first.lines)
    assert all(line.endswith(b"}") for line in first.stdout.split(b"\n")[:-1])
    assert "emitted=12345" in first.stderr  # the run's summary line

    second = plugin.run()
    assert second.rc == 0 and second.ids == []

    new = model.generate(50, time.time() - 0.5, time.time())
    time.sleep(2.2)  # let them clear the 2 s settle delay
    third = plugin.run()
    assert third.rc == 0
    assert sorted(third.ids) == sorted(r["id"] for r in new)


def test_requests_are_oldest_first_windowed_and_paged_by_cursor(plugin: Plugin, model, now):
    model.generate(2500, now - DAY, now - 120)
    assert plugin.run().rc == 0
    main = [u for u in model.requests if "activity_types" not in u]
    assert len(main) == 3  # 1000 + 1000 + 500
    assert all("order=asc" in u and "created_at.gte=" in u and "created_at.lt=" in u and "limit=1000" in u
               for u in main)
    assert "after_id=" not in main[0] and all("after_id=" in u for u in main[1:])
    # the reconciliation pass for late activity types is one small filtered request
    late = [u for u in model.requests if "activity_types[]=anthropic_access" in u]
    assert len(late) == 1 and "activity_types[]=cmek_preserve" in late[0]


def test_many_activities_sharing_one_timestamp_are_paged_by_cursor_not_time(plugin: Plugin, model, now):
    stamp = format_rfc3339(now - 600)
    records = [model.factory.make(now - 600) for _ in range(2600)]
    for r in records:
        r["created_at"] = stamp
    model.extend(records)
    plugin.configure(api={"page_size": 1000})
    first = plugin.run()
    assert sorted(first.ids) == sorted(r["id"] for r in records)
    assert plugin.run().ids == []


def test_late_activities_are_delivered_once(plugin: Plugin, model, now):
    model.generate(300, now - DAY, now - 120)
    plugin.configure(collect={"settle_delay_seconds": 3, "overlap_seconds": 300})
    assert len(plugin.run().ids) == 300

    t = time.time()
    # indexed 2.5 s after it happened: inside the settle delay
    within_settle = model.add(model.factory.make(t - 2), visible_at=t + 0.5)
    # indexed 90 s late: beyond the settle delay, inside the overlap re-read
    within_overlap = model.add(model.factory.make(t - 90), visible_at=t + 0.5)
    # Access Transparency: created two days back, visible only now
    access = model.add(model.factory.make(now - 2 * DAY, "anthropic_access"), visible_at=t + 0.5)
    cmek = model.add(model.factory.make(now - 1.5 * DAY, "cmek_preserve"), visible_at=t + 0.5)

    early = plugin.run()  # none of them visible yet
    assert early.rc == 0 and early.ids == []
    time.sleep(1.6)
    late = plugin.run()
    assert sorted(late.ids) == sorted(r["id"] for r in (within_settle, within_overlap, access, cmek))
    time.sleep(1)
    assert plugin.run().ids == []


def test_own_compliance_api_accessed_activities_are_delivered_once(plugin: Plugin, model, now):
    model.side_effects = True
    model.accessed_delay = 0.2
    model.generate(10, now - DAY, now - 120)
    plugin.configure(collect={"settle_delay_seconds": 1})
    first = plugin.run()
    assert len(first.ids) == 10
    time.sleep(1.5)
    second = plugin.run()
    kinds = Counter(r["type"] for r in second.lines)
    assert kinds == Counter({"compliance_api_accessed": 2})  # the first run's two requests
    assert {r["status_code"] for r in second.lines} == {200}
    time.sleep(1.5)
    third = plugin.run()
    assert {r["id"] for r in third.lines}.isdisjoint(second.ids)


def test_kill_9_at_random_moments_loses_nothing_and_repeats_at_most_a_page_per_kill(plugin: Plugin, model, sim, now):
    total, page = 20000, 250
    model.generate(total, now - 3 * DAY, now - 120)
    sim.faults = lambda n: time.sleep(0.06)  # ~80 pages of ~70 ms: kills land mid-backfill
    plugin.configure(api={"page_size": page})
    rng = random.Random(42)
    env = child_env()
    outputs: list[bytes] = []
    kills = 0
    for _ in range(8):
        proc = subprocess.Popen(plugin.cmd("run"), env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.4, 1.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        outputs.append(proc.communicate()[0])
    final = plugin.run()
    assert final.rc == 0, final.stderr
    outputs.append(final.stdout)

    ids: list[str] = []
    for out in outputs:
        complete = out if out.endswith(b"\n") or not out else out[: out.rfind(b"\n") + 1]
        ids += [json.loads(line)["id"] for line in complete.splitlines()]
    assert kills >= 6
    assert set(ids) == {r["id"] for r in model.all_records()}
    repeats = len(ids) - len(set(ids))
    assert repeats <= kills * page, (repeats, kills)
    assert plugin.run().ids == []


def test_without_kills_there_are_zero_repeats_across_many_small_runs(plugin: Plugin, model, now):
    model.generate(3000, now - 2 * DAY, now - 120)
    plugin.configure(api={"page_size": 250})
    ids: list[str] = []
    for _ in range(6):
        result = plugin.run("run", "--max-runtime", "0.3")
        assert result.rc == 0, result.stderr
        ids += result.ids
    ids += plugin.run().ids
    assert len(ids) == len(set(ids)) == 3000


def test_first_run_starts_at_initial_lookback_or_since(plugin: Plugin, model, now):
    old = model.generate(30, now - 3 * DAY, now - 2 * DAY)
    recent = model.generate(30, now - 20 * 3600, now - 120)
    plugin.configure(collect={"initial_lookback": "24h"})
    assert sorted(plugin.run().ids) == sorted(r["id"] for r in recent)

    plugin.state_path.unlink()
    backfill = plugin.run("run", "--since", format_rfc3339(now - 4 * DAY)[:10])
    assert sorted(backfill.ids) == sorted(r["id"] for r in old + recent)


def test_filters_are_sent_as_repeated_bracket_parameters(plugin: Plugin, model, now):
    plugin.configure(api={"organization_ids": ["org_a", "org_b"], "actor_ids": ["user_x"],
                          "exclude_activity_types": ["claude_chat_viewed", "anthropic_access"]})
    assert plugin.run().rc == 0
    url = model.requests[0]
    assert "organization_ids[]=org_a&organization_ids[]=org_b" in url
    assert "actor_ids[]=user_x" in url and "exclude_activity_types[]=claude_chat_viewed" in url
    late = [u for u in model.requests if "activity_types[]=" in u and "exclude" not in u]
    assert late and "anthropic_access" not in late[0] and "activity_types[]=cmek_preserve" in late[0]


def test_an_id_repeated_by_the_api_is_delivered_once(plugin: Plugin, model, now):
    record = model.factory.make(now - 600)
    model.add(record)
    model.add(dict(record), sort_key=(now - 500, "activity_zz_copy"))  # same id, again, later in the page
    result = plugin.run()
    assert result.ids == [record["id"]] and "already_seen=1" in result.stderr


def test_an_api_refusing_a_late_type_filter_does_not_stop_collection(plugin: Plugin, model, now):
    from anthropic_compliance_input.simulator import activity_types

    model.known_types = set(activity_types()) - {"cmek_preserve"}  # a strictly enum-bound API
    model.generate(30, now - DAY, now - 120)
    assert len(plugin.run().ids) == 30
    t = time.time()
    access = model.add(model.factory.make(now - 2 * DAY, "anthropic_access"), visible_at=t)
    result = plugin.run()
    assert result.rc == 0 and result.ids == [access["id"]]
    assert "late-activity reconciliation for cmek_preserve skipped: API 400" in result.stderr
