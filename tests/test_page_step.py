"""The pure page step: from (what is known, one page) to a plan, and from a carried-out plan to
the commit. No API, no disk: each rule that decides a gap or a duplicate, on its own."""

from __future__ import annotations

from anthropic_compliance_input.plan import TAIL, Window, dedupe_key, plan_page
from anthropic_compliance_input.timeutil import epoch, format_rfc3339

T0 = epoch("2026-11-27T10:00:00Z")
WINDOW = Window(T0, T0 + 600)


def activity(n: int, at: float, kind: str = "claude_chat_created", **extra) -> dict:
    return {"id": f"activity_{n:04d}", "created_at": format_rfc3339(at), "actor": {"type": "user_actor"},
            "type": kind, **extra}


def plan(records: list, known: set[str] = frozenset(), window: Window = WINDOW, nonfinite: bool = False,
         position: float | None = None):
    return plan_page(records, [dedupe_key(r) for r in records], known, window, nonfinite, position)


def test_a_clean_page_emits_everything_and_moves_the_cursor_near_its_end():
    page = [activity(i, T0 + 10 * i) for i in range(40)]
    p = plan(page)
    assert p.records == page and p.rejects == [] and p.duplicates == 0
    out = p.outcome()
    # the oldest of the last TAIL records: everything before it was read
    assert out.emitted == 40 and out.high_water == T0 + 10 * (40 - TAIL) and out.newest == T0 + 390
    assert p.position == T0 + 390
    assert [k for k, _, _ in out.seen] == [r["id"] for r in page]


def test_ids_already_seen_in_an_earlier_page_are_skipped():
    page = [activity(i, T0 + i) for i in range(4)]
    p = plan(page, known={"activity_0001", "activity_0003"})
    assert [r["id"] for r in p.records] == ["activity_0000", "activity_0002"] and p.duplicates == 2
    assert {k for k, _, _ in p.outcome().seen} == {"activity_0000", "activity_0002"}


def test_an_id_repeated_inside_one_page_is_emitted_once():
    a = activity(1, T0 + 1)
    p = plan([a, activity(2, T0 + 2), dict(a)])
    assert [r["id"] for r in p.records] == ["activity_0001", "activity_0002"] and p.duplicates == 1


def test_a_page_that_straddles_the_overlap_floor_stores_only_what_can_be_read_again():
    page = [activity(i, T0 + 100 * i) for i in range(6)]  # T0 .. T0+500
    page.append(activity(9, T0 + 50, "anthropic_access"))
    out = plan(page).outcome()
    floor, late_floors = T0 + 250, {"anthropic_access": T0 - 3600}
    kept = {k for k, _, _ in out.seen_above(floor, late_floors)}
    # below the floor only the late type stays (the reconciliation window still covers it)
    assert kept == {"activity_0003", "activity_0004", "activity_0005", "activity_0009"}


def test_rejects_with_and_without_created_at():
    good = activity(1, T0 + 10)
    dated = {"id": "activity_0002", "created_at": format_rfc3339(T0 + 20), "type": "x", "actor": {}}  # no actor.type
    undated = {"id": "activity_0003", "created_at": "yesterday", "type": "x", "actor": {"type": "user_actor"}}
    nameless = {"created_at": format_rfc3339(T0 + 30), "type": "x"}
    p = plan([good, dated, undated, nameless])
    assert p.records == [good]
    reasons = dict((r.get("id", "none"), why) for r, why in p.rejects)
    assert "actor.type" in reasons["activity_0002"] and "created_at" in reasons["activity_0003"]
    assert "id" in reasons["none"]
    out = p.outcome()
    stamps = {k: s for k, s, _ in out.seen}
    assert out.rejected == 3 and out.emitted == 1
    assert stamps["activity_0002"] == T0 + 20  # a usable created_at files it where it is
    assert stamps["activity_0003"] == WINDOW.lt  # none: the window's end, so the next poll still knows it
    assert dedupe_key(nameless).startswith("sha256:") and stamps[dedupe_key(nameless)] == T0 + 30
    # a rejected record inside the window counts for the cursor too (it was written, as a dead letter)
    assert out.high_water == T0 + 10 and out.newest == T0 + 10


def test_each_seen_id_keeps_its_activity_type_for_the_reconciliation_window():
    p = plan([activity(1, T0 + 1, "anthropic_access"), activity(2, T0 + 2, "cmek_preserve"), activity(3, T0 + 3),
              {"id": "activity_0004", "created_at": format_rfc3339(T0 + 4), "actor": {"type": "x"}, "type": 7}])
    assert [kind for _, _, kind in p.outcome().seen] == ["anthropic_access", "cmek_preserve", "claude_chat_created", None]


def test_records_dated_outside_the_window_are_delivered_but_move_nothing():
    future = activity(1, epoch("2099-01-01T00:00:00Z"))
    past = activity(2, epoch("2001-01-01T00:00:00Z"))
    inside = activity(3, T0 + 100)
    step = plan([past, inside, future])
    assert step.outside == [("activity_0002", epoch("2001-01-01T00:00:00Z")),
                            ("activity_0001", epoch("2099-01-01T00:00:00Z"))]  # what the collector logs
    out = step.outcome()
    assert out.emitted == 3
    assert out.high_water == T0 + 100 and out.newest == T0 + 100  # the odd two do not count
    stamps = {k: s for k, s, _ in out.seen}
    assert stamps["activity_0001"] == WINDOW.lt and stamps["activity_0002"] == WINDOW.lt


def test_a_stop_mid_page_commits_only_what_was_written():
    page = [activity(i, T0 + 10 * i) for i in range(6)]
    page.insert(4, {"id": "bad", "created_at": format_rfc3339(T0 + 45), "type": "x", "actor": {}})
    p = plan(page)
    out = p.outcome(emitted=3)  # the sink took 3 of 6 lines, then the stop cut in
    assert out.emitted == 3 and out.rejected == 1  # dead letters are written before any line
    assert {k for k, _, _ in out.seen} == {"activity_0000", "activity_0001", "activity_0002", "bad"}
    assert out.high_water == T0  # the oldest carried out: the first three were written
    assert p.outcome(emitted=0).high_water is None


def test_a_number_too_large_for_json_is_dead_lettered_not_emitted_as_infinity():
    huge = activity(1, T0 + 1, detail={"bytes": float("inf")})
    p = plan([huge, activity(2, T0 + 2, size=1e300)], nonfinite=True)
    assert [r["id"] for r in p.records] == ["activity_0002"]
    assert "too large" in p.rejects[0][1]


def test_created_at_at_the_ends_of_the_calendar_is_handled_not_a_crash():
    last, before_first = activity(1, T0), activity(2, T0)
    last["created_at"] = "9999-12-31T23:59:59-05:00"  # valid, far outside the window: delivered
    before_first["created_at"] = "0001-01-01T00:00:00+01:00"  # before year 1 in UTC
    p = plan([last, before_first])
    assert p.records == [last, before_first] and p.rejects == []
    out = p.outcome()
    assert out.high_water is None and [s for _, s, _ in out.seen] == [WINDOW.lt, WINDOW.lt]


def test_a_record_dated_later_than_its_place_cannot_carry_the_cursor():
    """The feed is in order; a record whose date runs ahead of its place (first on the page, or
    last) must not move the cursor past pages not yet read."""
    for at in (0, 5):
        page = [activity(i, T0 + i) for i in range(1, 6)]
        page.insert(at, activity(0, WINDOW.lt - 5))  # dated near the window's end
        out = plan(page).outcome()
        assert out.high_water == T0 + 1 and out.newest == WINDOW.lt - 5


def test_a_record_dated_earlier_than_its_place_is_kept_until_the_window_end():
    early = activity(3, T0 + 1)  # in the window, but served after records of T0 + 100
    page = [activity(1, T0 + 100), activity(2, T0 + 200), early, activity(4, T0 + 300)]
    p = plan(page)
    out = p.outcome()
    assert [s for _, s, _ in out.seen] == [T0 + 100, T0 + 200, WINDOW.lt, T0 + 300]
    assert out.high_water == T0 + 1  # the cursor stays conservative: the oldest date on the page
    nxt = plan([activity(5, T0 + 250)], position=p.position)  # the next page continues the order
    assert [s for _, s, _ in nxt.outcome().seen] == [WINDOW.lt]


def test_an_id_that_is_not_unicode_text_is_dead_lettered_not_a_crash():
    bad = activity(1, T0 + 1)
    bad["id"] = "\ud800"  # a lone surrogate: valid JSON escape, not text SQLite or a SIEM can store
    p = plan([bad, activity(2, T0 + 2)])
    assert [r["id"] for r in p.records] == ["activity_0002"]
    assert "Unicode" in p.rejects[0][1] and p.outcome().seen[0][0].startswith("sha256:")


def test_a_deeply_nested_record_with_a_huge_number_is_dead_lettered():
    deep: list = [1e400]
    for _ in range(5000):
        deep = [deep]
    p = plan([activity(1, T0 + 1, detail=deep)], nonfinite=True)
    assert p.records == [] and "too large" in p.rejects[0][1]
