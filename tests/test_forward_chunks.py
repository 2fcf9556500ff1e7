"""How the acknowledged forward output cuts a page into Forward-mode messages: every record once,
in page order, each message within forward_chunk_max_bytes (one record larger than that goes
alone), and each record's EventTime its created_at to the nanosecond."""

from __future__ import annotations

import random

import msgpack

from anthropic_compliance_input.config import OutputConfig
from anthropic_compliance_input.forward import AckedForwardSink
from anthropic_compliance_input.timeutil import epoch_ns, fast_epoch

LIMIT = 65536


def unpack(message: bytes) -> list:
    return msgpack.unpackb(message, raw=False, ext_hook=lambda code, data: (code, data))


def record(i: int, created_at: str, size: int) -> dict:
    return {"id": f"activity_{i:06d}", "created_at": created_at, "type": "claude_chat_created", "pad": "x" * size}


def cut(records: list[dict]) -> list[tuple[str, bytes, int]]:
    sink = AckedForwardSink(OutputConfig(mode="forward", forward_chunk_max_bytes=LIMIT, forward_tag="t.a"))
    return list(sink._chunks((r, fast_epoch(r["created_at"]), r["created_at"]) for r in records))


def test_a_page_is_cut_into_messages_within_the_limit_in_order():
    rng = random.Random(7)
    forms = ["2026-11-27T10:00:{:02d}.123456Z", "2026-11-27T10:00:{:02d}Z", "2026-11-27T10:00:{:02d}.123456789Z",
             "2026-11-27T11:00:{:02d}.5+01:00"]
    records = [record(i, rng.choice(forms).format(i % 60), rng.choice([10, 300, 3000])) for i in range(2000)]
    records.insert(700, record(9999, "2026-11-27T10:00:00Z", 200_000))  # larger than a chunk on its own
    messages = cut(records)
    assert len(messages) > 10 and len({chunk for chunk, _, _ in messages}) == len(messages)
    sent = []
    for chunk, message, count in messages:
        tag, entries, option = unpack(message)
        assert tag == "t.a" and option == {"chunk": chunk, "size": count} and len(entries) == count
        assert len(message) <= LIMIT or count == 1
        sent += entries
    assert [r for _, r in sent] == records
    for (code, data), r in zip((t for t, _ in sent), records):
        seconds, nanos = epoch_ns(r["created_at"])
        assert code == 0 and data == seconds.to_bytes(4, "big") + nanos.to_bytes(4, "big"), r["created_at"]


def test_a_page_that_fits_is_one_message():
    records = [record(i, "2026-11-27T10:00:00.000001Z", 10) for i in range(100)]
    assert [count for _, _, count in cut(records)] == [100]
