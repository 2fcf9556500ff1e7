"""The conf/ snippets as text: each names the packaged paths and carries the shipper gotchas.
(Each snippet running under its real shipper: test_syslog_ng.py, test_fluent_bit.py.)"""

from __future__ import annotations

import re

from shippers import CONF, PACKAGED_COMMAND, PACKAGED_CONFIG


def test_every_snippet_names_the_packaged_paths():
    for path in CONF.rglob("*"):
        if path.is_file() and path.name != "config.toml" and "parsers" not in path.name:
            text = path.read_text()
            if "ExecStart" in text or "program(" in text or "exec" in text:
                assert PACKAGED_COMMAND in text and PACKAGED_CONFIG in text, path


def test_snippets_carry_the_shipper_gotchas():
    fb = (CONF / "fluent-bit/anthropic-compliance-input.conf").read_text()
    assert re.search(r"^\s+Threaded\s+On$", fb, re.M) and re.search(r"^\s+Buf_Size\s+4MB$", fb, re.M)
    assert "${" not in fb.split("[INPUT]")[1] and "--max-runtime 50" in fb and "Interval_Sec  60" in fb
    follow = (CONF / "fluent-bit/anthropic-compliance-input-follow.conf").read_text()
    assert "Oneshot       On" in follow and "run --follow" in follow and "Threaded      On" in follow
    parser = (CONF / "fluent-bit/parsers-anthropic-compliance-input.conf").read_text()
    assert "Time_Key    created_at" in parser and "Time_Keep   On" in parser
    vector = (CONF / "vector/anthropic-compliance-input.yaml").read_text()
    assert "include_stderr: false" in vector and "max_length: 4194304" in vector
    assert "parse_timestamp(.created_at" in vector
    sng = (CONF / "syslog-ng/anthropic-compliance-input.conf").read_text()
    assert "flags(no-parse)" in sng and "log-msg-size(4194304)" in sng and "source s_anthropic_compliance {" in sng
