"""The forward output (Fluentd Forward protocol) into a minimal receiver: records with created_at as
the event time, a receiver that is down, a unix socket. (Into a real Fluent Bit: test_fluent_bit.py.)"""

from __future__ import annotations

import socket
import time

from anthropic_compliance_input.timeutil import parse_rfc3339
from forward_receiver import ForwardReceiver
from helpers import Plugin

DAY = 86400.0


def test_forward_output_sends_records_with_created_at_as_event_time(plugin: Plugin, model, now):
    receiver = ForwardReceiver()
    records = model.generate(250, now - DAY, now - 120)
    plugin.configure(output={"mode": "forward", "forward_port": receiver.port})
    result = plugin.run()
    assert result.rc == 0 and result.stdout == b"", result.stderr
    receiver.wait_for(250)
    receiver.close()
    by_id = {r["id"]: r for r in records}
    assert sorted(e[2]["id"] for e in receiver.events) == sorted(by_id)
    for tag, (sec, nsec), record in receiver.events:
        assert tag == "anthropic.activity" and record == by_id[record["id"]]
        text = record["created_at"]  # any RFC 3339 form: whole seconds, 1-9 digits, an offset
        frac = text[20:].rstrip("Z").split("+")[0].split("-")[0] if text[19] == "." else ""
        assert nsec == int(frac.ljust(9, "0") or 0)  # sub-second precision, no float rounding
        assert sec == int(parse_rfc3339(text).timestamp())


def test_forward_output_failure_leaves_the_cursor_where_it_was(plugin: Plugin, model, now):
    model.generate(40, now - DAY, now - 120)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed: the receiver is down
    plugin.configure(output={"mode": "forward", "forward_port": port})
    for _ in range(2):
        result = plugin.run()
        assert result.rc == 69 and result.stdout == b""
        assert "forward output 127.0.0.1" in result.stderr and "cursor did not move" in result.stderr
        state = plugin.state()
        assert state["high_water"] == state["origin"] and state["seen"] == 0
        assert state["totals"]["emitted"] == 0 and "forward output" in state["last_error"]

    receiver = ForwardReceiver()  # the receiver comes back: everything arrives
    plugin.configure(output={"mode": "forward", "forward_port": receiver.port})
    assert plugin.run().rc == 0
    time.sleep(0.5)
    assert len({e[2]["id"] for e in receiver.events}) == 40
    receiver.close()


def test_forward_output_over_a_unix_socket(plugin: Plugin, model, now, tmp_path):
    path = tmp_path / "forward.sock"
    receiver = ForwardReceiver(unix_path=path)
    records = model.generate(30, now - DAY, now - 120)
    plugin.configure(output={"mode": "forward", "forward_host": f"unix://{path}"})
    result = plugin.run()
    assert result.rc == 0 and result.stdout == b"", result.stderr
    receiver.wait_for(30)
    receiver.close()
    assert sorted(e[2]["id"] for e in receiver.events) == sorted(r["id"] for r in records)


def test_without_acks_an_odd_record_still_goes_and_a_format_keeps_the_event_time(plugin: Plugin, model, now):
    """forward_require_ack = false (fluent-logger): a lone surrogate and an integer beyond 64 bits
    are sent escaped and as digits, not a DeliveryError on every run; with format = ecs the event
    time is still created_at."""
    receiver = ForwardReceiver()
    odd = model.add(model.factory.make(now - 3600, "claude_chat_created", note="bad \udc80 text", big=2**70))
    records = model.generate(30, now - DAY, now - 120) + [odd]
    plugin.configure(output={"mode": "forward", "forward_port": receiver.port, "forward_require_ack": False,
                             "format": "ecs"})
    result = plugin.run()
    assert result.rc == 0 and "Traceback" not in result.stderr, result.stderr
    receiver.wait_for(len(records))
    receiver.close()
    by_id = {r["id"]: r for r in records}
    docs = {doc["event"]["id"]: (sec, doc) for _, (sec, _nsec), doc in receiver.events}
    assert sorted(docs) == sorted(by_id)
    for activity_id, (sec, doc) in docs.items():
        assert sec == int(parse_rfc3339(by_id[activity_id]["created_at"]).timestamp())
    metadata = docs[odd["id"]][1]["anthropic"]["audit"]["metadata"]
    assert metadata["big"] == str(2**70) and metadata["note"] == "bad \\udc80 text"
