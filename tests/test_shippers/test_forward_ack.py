"""Acknowledged forward delivery: the cursor moves only past records the receiver acknowledged.
Against a receiver that acks normally, never, with another id, hangs up half way through a
chunk, or acks after the sender stopped waiting: every activity arrives at least once, the
cursor never passes an unacknowledged record, and without failures nothing arrives twice."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter

import pytest
from forward_receiver import ForwardReceiver
from helpers import Plugin

DAY = 86400.0


def configure(plugin: Plugin, receiver: ForwardReceiver, **output) -> None:
    plugin.configure(output={"mode": "forward", "forward_port": receiver.port, "forward_ack_timeout_seconds": 1,
                             "forward_chunk_max_bytes": 65536, **output},
                     api={"max_retries": 3, "retry_backoff_seconds": 0.01})


def committed_ids(plugin: Plugin) -> set[str]:
    with sqlite3.connect(plugin.state_path) as db:
        return {row[0] for row in db.execute("SELECT id FROM seen")}


def test_acked_pages_arrive_once_in_chunks(plugin: Plugin, model, now):
    receiver = ForwardReceiver()
    records = model.generate(2000, now - DAY, now - 120)
    configure(plugin, receiver)
    result = plugin.run()
    assert result.rc == 0 and result.stdout == b"", result.stderr
    ids = receiver.ids()
    assert sorted(ids) == sorted(r["id"] for r in records)  # each exactly once
    assert len(receiver.chunks) > 10 and len(set(receiver.chunks)) == len(receiver.chunks)  # 64 KB chunks
    assert committed_ids(plugin) <= set(receiver.acked)
    receiver.close()


@pytest.mark.parametrize("behaviour", ["never", "wrong-id", "close-half-way", "late"])
def test_an_unacknowledged_chunk_is_sent_again_with_the_same_id(plugin: Plugin, model, now, behaviour):
    receiver = ForwardReceiver(script=["ack", behaviour], late=2.0)  # the second chunk goes wrong once
    records = model.generate(600, now - DAY, now - 120)
    configure(plugin, receiver)
    result = plugin.run()
    assert result.rc == 0, result.stderr
    assert "sending it again" in result.stderr and "Traceback" not in result.stderr
    assert set(receiver.ids()) == {r["id"] for r in records}  # every activity, at least once
    assert committed_ids(plugin) <= set(receiver.acked)  # the cursor never passed an unacked record
    resent = [chunk for chunk, n in Counter(receiver.chunks).items() if n > 1]
    if behaviour != "close-half-way":  # (a chunk cut off half way never arrived to be counted)
        assert len(resent) == 1  # the same chunk id again: the receiver can tell it is a resend
    receiver.close()


def test_a_receiver_that_never_acks_leaves_the_cursor_alone(plugin: Plugin, model, now):
    receiver = ForwardReceiver(script=["never"] * 1000)
    records = model.generate(300, now - DAY, now - 120)
    configure(plugin, receiver)
    started = time.monotonic()
    result = plugin.run()
    assert result.rc == 69 and "not acknowledged" in result.stderr and "cursor did not move" in result.stderr
    assert time.monotonic() - started < 20  # 4 attempts of a 1 s ack timeout, not for ever
    state = plugin.state()
    assert state["seen"] == 0 and state["high_water"] == state["origin"] and state["totals"]["emitted"] == 0
    receiver.script = []  # it starts acknowledging: everything arrives, the earlier sends were extra
    assert plugin.run().rc == 0
    assert set(receiver.acked) == {r["id"] for r in records} and committed_ids(plugin) <= set(receiver.acked)
    receiver.close()


def test_without_ack_mode_the_forward_output_still_works(plugin: Plugin, model, now):
    receiver = ForwardReceiver()
    records = model.generate(50, now - DAY, now - 120)
    configure(plugin, receiver, forward_require_ack=False)
    assert plugin.run().rc == 0
    receiver.wait_for(50)
    assert sorted(receiver.ids()) == sorted(r["id"] for r in records) and receiver.chunks == []
    receiver.close()


def test_an_answer_that_is_not_msgpack_is_a_resend_not_a_crash(plugin: Plugin, model, now):
    receiver = ForwardReceiver(script=["garbage"])
    records = model.generate(200, now - DAY, now - 120)
    configure(plugin, receiver)
    result = plugin.run()
    assert result.rc == 0 and "Traceback" not in result.stderr and "sending it again" in result.stderr
    assert set(receiver.acked) == {r["id"] for r in records}
    receiver.close()


def test_a_record_msgpack_cannot_carry_as_is_still_goes(plugin: Plugin, model, now):
    """A lone surrogate (valid JSON, invalid UTF-8) and an integer beyond 64 bits: stdout can
    write them; the forward output escapes the one and sends the other as digits, and goes on.
    Nesting deeper than ormsgpack packs (255) goes too."""
    receiver = ForwardReceiver()
    deep: list = ["bottom"]
    for _ in range(300):
        deep = [deep]
    odd = model.add(model.factory.make(now - 3600, "claude_chat_created", note="bad \udc80 text", big=2**70))
    nested = model.add(model.factory.make(now - 3500, "claude_chat_created", deep=deep))
    records = model.generate(50, now - DAY, now - 120) + [odd, nested]
    configure(plugin, receiver)
    result = plugin.run()
    assert result.rc == 0 and "Traceback" not in result.stderr, result.stderr
    assert set(receiver.acked) == {r["id"] for r in records}
    sent = next(record for _, _, record in receiver.events if record["id"] == odd["id"])
    assert sent["note"] == "bad \\udc80 text" and sent["big"] == str(2**70)
    assert next(record for _, _, record in receiver.events if record["id"] == nested["id"])["deep"] == deep
    receiver.close()


def test_a_stop_while_the_receiver_reads_nothing_is_a_clean_stop(plugin: Plugin, model, now):
    """SIGTERM while the send blocks (the receiver's buffers are full): exit 0, nothing committed."""
    import signal

    receiver = ForwardReceiver(script=["no-read"])
    model.generate(3000, now - DAY, now - 120)
    configure(plugin, receiver, forward_chunk_max_bytes=8 << 20, forward_timeout_seconds=60)
    proc = plugin.start("run")
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "stopped=SIGTERM" in err.decode() and "stdout" not in err.decode()
    assert plugin.state()["seen"] == 0
    receiver.close()


def test_max_runtime_does_not_hide_a_receiver_that_never_acks(plugin: Plugin, model, now):
    receiver = ForwardReceiver(script=["never"] * 1000)
    model.generate(100, now - DAY, now - 120)
    configure(plugin, receiver, forward_ack_timeout_seconds=1)
    result = plugin.run("run", "--max-runtime", "3")
    assert result.rc == 69 and "still failing when the run stopped (max-runtime): forward output" in result.stderr
    assert "not acknowledged" in plugin.state()["last_error"]
    receiver.close()
