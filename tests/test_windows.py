"""The windows the cursor reads, against odd API answers and config changes: records dated
outside the window asked for, records without a date, late types at the lookback edge under
slow and retried requests, windows widened between runs and on SIGHUP, an empty page that
still says has_more, and a plain run cut short by --max-runtime while the API fails."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter

import pytest
from helpers import Plugin

from anthropic_compliance_input.timeutil import epoch, format_rfc3339

DAY = 86400.0


def assert_once(delivered: list[str], expected: set[str]) -> None:
    counts = Counter(delivered)
    assert [k for k, n in counts.items() if n > 1] == [], "delivered twice"
    assert set(counts) == expected


def follow(plugin: Plugin, during) -> tuple[list[str], str]:
    """Run --follow while `during(proc)` runs; the ids it printed and its stderr."""
    proc = plugin.start("run", "--follow")
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, b"")), daemon=True)
    reader.start()
    try:
        during(proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        reader.join(5)
    assert proc.returncode == 0, err.decode()
    return [json.loads(line)["id"] for line in lines], err.decode()


@pytest.mark.parametrize("dates", [("2099-01-01T00:00:00Z",), ("2001-01-01T00:00:00Z",),
                                   ("2099-01-01T00:00:00Z", "2001-01-01T00:00:00Z")], ids=["2099", "2001", "both"])
def test_records_dated_2099_and_2001_are_delivered_once_and_do_not_move_the_cursor(plugin: Plugin, model, now, dates):
    """Found on 0.1: one record dated 2099 set the cursor to 2099 (nothing collected after it);
    one dated 2001 was delivered again on every run."""
    normal = model.generate(40, now - 3600, now - 600)
    odd = []
    for n, (created, place) in enumerate(zip(dates, (now - 900, now - 800))):
        record = model.factory.make(now, "claude_chat_created")
        record["created_at"] = created  # the API files it at `place`, but it says otherwise
        odd.append(model.add(record, sort_key=(place, record["id"])))
    plugin.configure(collect={"overlap_seconds": 3600})  # every later run re-reads where they sit
    runs = [plugin.run() for _ in range(3)]
    assert all(r.rc == 0 for r in runs)
    assert_once([i for r in runs for i in r.ids], {r["id"] for r in normal + odd})
    state = plugin.state()
    assert epoch(state["high_water"]) <= time.time()  # not 2099
    assert f"API anomaly: {len(dates)} record(s) dated outside the window" in runs[0].stderr  # logged when delivered,
    assert all("API anomaly" not in r.stderr and "Traceback" not in r.stderr for r in runs[1:])  # not when skipped
    later = model.generate(10, time.time() - 200, time.time() - 70)  # collection continues
    assert sorted(plugin.run().ids) == sorted(r["id"] for r in later)


def test_a_record_without_a_usable_created_at_is_dead_lettered_once(plugin: Plugin, model, now):
    """Found on 0.1: such a record was filed at the old cursor and pruned by the same commit, so
    the next overlap re-read dead-lettered it again. The one placed first in its window is the
    case that showed it (no dated record before it on the page)."""
    model.generate(5, now - 3000, now - 600)
    for n, (created, place) in enumerate(((None, now - 3500), ("last tuesday", now - 700))):
        record = {"id": f"activity_01nodate{n}", "type": "claude_chat_created", "actor": {"type": "user_actor"}}
        if created:
            record["created_at"] = created
        model.add(record, sort_key=(place, record["id"]))
    plugin.configure(collect={"overlap_seconds": 3600})
    for _ in range(3):
        assert plugin.run().rc == 0
    dead = [json.loads(line) for line in plugin.rejected_path.read_text().splitlines()]
    assert sorted(d["activity"]["id"] for d in dead) == ["activity_01nodate0", "activity_01nodate1"]


def test_late_types_at_the_lookback_edge_under_slow_and_retried_requests(plugin: Plugin, model, sim):
    """Access Transparency indexed long after it happened: only the reconciliation pass finds it.
    Slow and retried requests stretch each poll; the seen set and the queries share one clock."""
    plugin.configure(api={"max_retries": 6},
                     collect={"settle_delay_seconds": 1, "overlap_seconds": 1, "late_lookback": "12s",
                              "interval_seconds": 0.2, "initial_lookback": "1m"})
    faults = iter(["slow", None, "503", None, None, "503", "503", "503", None, "slow"] * 50)
    sim.faults = lambda n: next(faults, None)
    expected: list[dict] = []

    def traffic(_proc) -> None:
        for _ in range(25):
            api_now = model.clock()
            expected.extend(model.generate(2, api_now - 0.5, api_now - 0.2))
            # created 4-10 s ago, visible only now: past settle + overlap, inside late_lookback
            for age in (4.0, 9.5):
                record = model.factory.make(api_now - age, "anthropic_access")
                expected.append(model.add(record))
            time.sleep(0.3)
        time.sleep(5)

    ids, err = follow(plugin, traffic)
    assert_once(ids, {r["id"] for r in expected})
    assert "retry" in err  # the faults happened


def test_widening_overlap_and_late_lookback_between_runs_repeats_nothing(plugin: Plugin, model, now):
    model.generate(300, now - 3000, now - 70)
    model.generate(30, now - 4 * 3600, now - 70, kind="anthropic_access")
    plugin.configure(collect={"overlap_seconds": 30, "late_lookback": "1h", "settle_delay_seconds": 1})
    first = plugin.run()
    assert first.rc == 0 and len(first.ids) == 330
    plugin.configure(collect={"overlap_seconds": 3000, "late_lookback": "5h", "settle_delay_seconds": 1})
    assert plugin.run().ids == []
    later = model.generate(20, time.time() - 20, time.time() - 1.5)  # new since the first run
    third = plugin.run()
    assert sorted(third.ids) == sorted(r["id"] for r in later)


def test_widening_windows_on_sighup_repeats_nothing(plugin: Plugin, model, now):
    model.generate(200, now - 3000, now - 70)
    model.generate(20, now - 4 * 3600, now - 70, kind="anthropic_access")
    plugin.configure(collect={"overlap_seconds": 30, "late_lookback": "1h", "interval_seconds": 0.3,
                              "settle_delay_seconds": 1})
    expected = {r["id"] for r in model.all_records()}

    def widen(proc) -> None:
        time.sleep(2)
        plugin.configure(collect={"overlap_seconds": 3000, "late_lookback": "5h", "interval_seconds": 0.3,
                                  "settle_delay_seconds": 1})
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        expected.update(r["id"] for r in model.generate(10, model.clock() - 0.8, model.clock() - 0.3))
        time.sleep(2)

    ids, err = follow(plugin, widen)
    assert "SIGHUP: config reloaded" in err
    assert_once(ids, expected)


def test_an_empty_page_that_says_has_more_does_not_end_the_window(httpserver, tmp_path):
    from werkzeug import Response

    now = time.time()
    records = [{"id": f"activity_{i:03d}", "created_at": format_rfc3339(now - 3000 + i), "type": "claude_chat_created",
                "actor": {"type": "user_actor"}} for i in range(5)]

    def answer(request):
        args = request.args
        if args.getlist("activity_types[]"):  # the late-type reconciliation
            body = {"data": [], "has_more": False, "first_id": None, "last_id": None}
        elif "after_id" not in args:  # a page emptied by the API's own filtering, more to come
            body = {"data": [], "has_more": True, "first_id": None, "last_id": "activity_cursor"}
        else:
            assert args["after_id"] == "activity_cursor"
            body = {"data": records, "has_more": False, "first_id": records[0]["id"], "last_id": records[-1]["id"]}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/v1/compliance/activities").respond_with_handler(answer)
    plugin = Plugin(tmp_path, httpserver.url_for("").rstrip("/"))
    result = plugin.run()
    assert result.rc == 0, result.stderr
    assert result.ids == [r["id"] for r in records]


def test_max_runtime_does_not_hide_an_outage(plugin: Plugin, model, now):
    import socket

    model.generate(5, now - DAY, now - 3600)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here: the API is unreachable
    plugin.configure(api={"base_url": f"http://127.0.0.1:{port}", "retry_backoff_seconds": 1, "max_retries": 8})
    result = plugin.run("run", "--max-runtime", "2")
    assert result.rc == 69, result.stderr
    assert "Traceback" not in result.stderr and "still failing" in result.stderr
    status = json.loads(plugin.run("status", "--json").stdout)
    assert status["last_error"] and "still failing" in status["last_error"] and status["up"] == 0


def test_a_number_too_large_for_json_is_dead_lettered_not_written_as_infinity(httpserver, tmp_path):
    from werkzeug import Response

    now = time.time()
    body = ('{"data": [{"id": "activity_big", "created_at": "%s", "type": "claude_file_uploaded",'
            ' "actor": {"type": "user_actor"}, "file_size": 1e400},'
            ' {"id": "activity_ok", "created_at": "%s", "type": "claude_file_uploaded",'
            ' "actor": {"type": "user_actor"}, "file_size": 1e300}],'
            ' "has_more": false, "first_id": "activity_big", "last_id": "activity_ok"}'
            % (format_rfc3339(now - 3000), format_rfc3339(now - 2990)))
    empty = '{"data": [], "has_more": false, "first_id": null, "last_id": null}'
    httpserver.expect_request("/v1/compliance/activities").respond_with_handler(
        lambda request: Response(empty if request.args.getlist("activity_types[]") else body,
                                 content_type="application/json"))
    plugin = Plugin(tmp_path, httpserver.url_for("").rstrip("/"))
    result = plugin.run()
    assert result.rc == 0, result.stderr
    assert result.ids == ["activity_ok"] and b"Infinity" not in result.stdout and b"null" not in result.stdout
    dead = [json.loads(line) for line in plugin.rejected_path.read_text().splitlines()]
    assert [d["activity"]["id"] for d in dead] == ["activity_big"] and "too large" in dead[0]["reason"]


def test_a_record_dated_later_than_its_place_does_not_skip_the_pages_after_it(plugin: Plugin, model, sim, now):
    """Found by an adversarial run: the cursor followed the newest date of a page, so one odd
    record on page 1 and a failure on page 2 lost 400 activities for good."""
    normal = model.generate(500, now - 20 * 3600, now - 3600)
    odd = model.factory.make(now - 1800, "claude_chat_created")  # dated 30 min ago ...
    model.add(odd, sort_key=(now - 23 * 3600, odd["id"]))  # ... served first, 23 h back
    failing = {"on": True}
    sim.faults = lambda n: "503" if failing["on"] and n >= 2 else None
    plugin.configure(api={"page_size": 100, "max_retries": 0})
    first = plugin.run()
    assert first.rc == 69 and len(first.ids) == 100
    failing["on"] = False
    second = plugin.run()
    assert second.rc == 0
    assert_once(first.ids + second.ids, {r["id"] for r in normal} | {odd["id"]})


def test_a_record_dated_earlier_than_its_place_is_delivered_once(plugin: Plugin, model, now):
    normal = model.generate(50, now - 20 * 3600, now - 3600)
    odd = model.factory.make(now - 20 * 3600, "claude_chat_created")  # dated 20 h ago ...
    model.add(odd, sort_key=(now - 150, odd["id"]))  # ... served 2.5 min ago, inside every overlap
    plugin.configure(collect={"settle_delay_seconds": 1})
    runs = []
    for _ in range(3):
        runs.append(plugin.run())
        time.sleep(1.2)
    assert all(r.rc == 0 for r in runs)
    assert_once([i for r in runs for i in r.ids], {r["id"] for r in normal} | {odd["id"]})


def test_making_a_type_late_between_runs_repeats_nothing(plugin: Plugin, model, now):
    """Found by an adversarial run: ids of a type not yet late were pruned as ordinary ones, and
    the first reconciliation after it became late delivered them again."""
    model.generate(200, now - 4 * 3600, now - 70)
    access = model.generate(20, now - 4 * 3600, now - 70, kind="anthropic_access")
    plugin.configure(collect={"late_activity_types": [], "settle_delay_seconds": 1, "overlap_seconds": 60})
    assert len(plugin.run().ids) == 220
    plugin.configure(collect={"settle_delay_seconds": 1, "overlap_seconds": 60})  # the default late types
    assert plugin.run().ids == []
    # from now on the type is reconciled: one indexed late, after the change, is delivered once
    t = model.clock()
    late = model.add(model.factory.make(t - 30, "anthropic_access"), visible_at=t + 1.5)
    assert plugin.run().ids == []
    time.sleep(2)
    assert plugin.run().ids == [late["id"]] and plugin.run().ids == []
    assert not {r["id"] for r in access} & {late["id"]}


def test_raising_the_settle_delay_repeats_nothing(plugin: Plugin, model, now):
    """Found by an adversarial run: a cursor inside the new settle delay was taken for one
    written by a host clock ahead of the API's, and pulled back."""
    model.generate(500, now - 3600, now - 6)
    plugin.configure(collect={"settle_delay_seconds": 5, "overlap_seconds": 60})
    first = plugin.run()
    plugin.configure(collect={"settle_delay_seconds": 900, "overlap_seconds": 60})
    second = plugin.run()
    assert first.rc == 0 and second.rc == 0 and "ahead of the API's clock" not in second.stderr
    assert_once(first.ids + second.ids, {r["id"] for r in model.all_records()})


@pytest.mark.parametrize("deep", [False, True], ids=["regular-windows", "deep-reconciliation"])
def test_an_ordinary_activity_indexed_later_than_the_overlap(plugin: Plugin, model, now, deep):
    """The documented limit (finding 11): an activity of an ordinary type that becomes visible
    later than settle + overlap after its created_at is past every regular window. The deep
    reconciliation, when turned on, finds it and delivers it once, and says so."""
    model.generate(20, now - 600, now - 30)
    collect = {"settle_delay_seconds": 1, "overlap_seconds": 2}
    if deep:
        collect.update(deep_reconcile_interval="1s", deep_reconcile_lookback="1h")
    plugin.configure(collect=collect)
    first = plugin.run()
    assert first.rc == 0 and len(first.ids) == 20
    t = time.time()
    straggler = model.add(model.factory.make(t - 1, "claude_chat_created"), visible_at=t + 5)  # 6 s late
    time.sleep(3.5)
    assert plugin.run().ids == []  # not visible yet; the cursor moves past it
    time.sleep(2.5)
    third = plugin.run()
    if not deep:
        assert third.ids == [] and plugin.run().ids == []  # lost: what the README says plainly
        return
    assert third.ids == [straggler["id"]]
    assert "deep reconciliation of" in third.stderr and "1 activities the regular windows had missed" in third.stderr
    time.sleep(1.1)
    again = plugin.run()
    assert again.ids == [] and "0 activities the regular windows had missed" in again.stderr
    state = plugin.state()
    # it keeps every id since it was turned on (the straggler; the first 20 are older than that)
    assert epoch(state["deep_floor"]) <= epoch(straggler["created_at"]) and state["seen"] >= 1


def test_deep_reconciliation_turned_on_later_repeats_nothing(plugin: Plugin, model, now):
    """Its seen set covers only the time since it was turned on, and grows into its lookback."""
    model.generate(200, now - 5000, now - 30)
    plugin.configure(collect={"settle_delay_seconds": 1})
    assert len(plugin.run().ids) == 200
    plugin.configure(collect={"settle_delay_seconds": 1, "deep_reconcile_interval": "1s",
                              "deep_reconcile_lookback": "2h"})
    assert plugin.run().ids == []
    later = model.generate(10, time.time() - 20, time.time() - 1.5)
    time.sleep(1.1)
    assert sorted(plugin.run().ids) == sorted(r["id"] for r in later)
    plugin.configure(collect={"settle_delay_seconds": 1})  # and off again: the extra ids are pruned
    assert plugin.run().ids == [] and plugin.state()["deep_floor"] is None
