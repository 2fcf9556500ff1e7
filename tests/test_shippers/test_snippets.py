"""The conf/ snippets as text: each names the packaged paths and carries the shipper gotchas.
(Each snippet running under its real shipper: test_syslog_ng.py, test_fluent_bit.py.)"""

from __future__ import annotations

import re

from shippers import CONF, PACKAGED_COMMAND, PACKAGED_CONFIG


def test_every_snippet_names_the_packaged_paths():
    """Host snippets name the package's command and config; the per-tenant template units the
    tenant's config (%i.toml); the Kubernetes manifests the image's entrypoint and its mount."""
    for path in CONF.rglob("*"):
        if path.is_file() and path.name != "config.toml" and "parsers" not in path.name:
            text = path.read_text()
            if "kubernetes" in path.parts:
                if "containers:" in text:
                    assert "mountPath: /etc/anthropic-compliance-input" in text, path
            elif "@" in path.name and "ExecStart" in text:
                assert PACKAGED_COMMAND in text and "/etc/anthropic-compliance-input/%i.toml" in text, path
            elif "ExecStart" in text or "program(" in text or "exec" in text:
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


# Ruby's Time.iso8601 (Time.xmlschema), which Fluentd's `time_format %iso8601` calls: its grammar
# as Ruby's lib/time.rb writes it.
RUBY_XMLSCHEMA = re.compile(r"\A\s*(-?\d+)-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d(?::?\d\d)?)?\s*\Z",
                            re.I)


def test_fluentd_reads_every_rfc3339_form_of_created_at():
    text = (CONF / "fluentd/anthropic-compliance-input.conf").read_text()
    parse = text.split("<parse>")[1].split("</parse>")[0]
    settings = dict(line.split(None, 1) for line in parse.strip().splitlines())
    assert settings == {"@type": "json", "time_key": "created_at", "keep_time_key": "true",
                        "time_type": "string", "time_format": "%iso8601"}
    for value in ("2026-11-03T10:00:00Z", "2026-11-03T10:00:00.123456789Z", "2026-11-03T12:00:00+02:00",
                  "2026-11-03T12:00:00.5+02:00", "2026-11-03T10:00:00.123456Z"):
        assert RUBY_XMLSCHEMA.match(value), value


def test_snippets_whose_shipper_discards_stderr_log_to_syslog():
    """Vector (include_stderr: false), Fluentd in_exec and syslog-ng program() throw stderr away."""
    for name in ("vector/anthropic-compliance-input.yaml", "fluentd/anthropic-compliance-input.conf",
                 "syslog-ng/anthropic-compliance-input.conf"):
        text = (CONF / name).read_text()
        config = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        assert re.search(r"--log-target[\s,\-]+syslog[\s,\-]+run\b", config), name
        header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
        assert re.search(r"--log-target syslog.*\n?.*stderr|stderr.*\n?.*--log-target syslog", header), name  # says why
    fb = (CONF / "fluent-bit/anthropic-compliance-input.conf").read_text()
    assert "--log-target" not in fb  # Fluent Bit passes stderr on (to the journal under systemd)


def test_fluent_bit_parser_reads_every_form():
    parser = (CONF / "fluent-bit/parsers-anthropic-compliance-input.conf").read_text()
    assert "Time_Format %Y-%m-%dT%H:%M:%S.%L%z" in parser and "Time_Strict Off" in parser


def test_forward_snippets_say_what_is_guaranteed_end_to_end():
    for name in ("fluent-bit/anthropic-compliance-input-forward.conf", "fluentd/anthropic-compliance-input-forward.conf",
                 "vector/anthropic-compliance-input-forward.yaml"):
        header = "\n".join(line for line in (CONF / name).read_text().splitlines() if line.startswith("#"))
        assert "Guaranteed end to end" in header and "Not guaranteed" in header and "at least" in header, name
    fb = (CONF / "fluent-bit/anthropic-compliance-input-forward.conf").read_text()
    assert re.search(r"^\s+storage.type\s+filesystem$", fb, re.M) and re.search(r"^\s+Buffer_Max_Size\s+6M$", fb, re.M)
    fb_yaml = (CONF / "fluent-bit/anthropic-compliance-input-forward.yaml").read_text()
    assert "storage.type: filesystem" in fb_yaml and "storage.path:" in fb_yaml
    vector = (CONF / "vector/anthropic-compliance-input-forward.yaml").read_text()
    assert re.search(r"acknowledgements:\n\s+enabled: true", vector) and "type: disk" in vector
    unit = (CONF / "systemd/anthropic-compliance-input.service").read_text()
    assert "run --follow" in unit and "acknowledged" in unit.lower()
