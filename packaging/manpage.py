"""Write the man page (roff) from the argparse help, so the two never disagree."""

from __future__ import annotations

import argparse
import datetime
import json
import sys

from anthropic_compliance_input import NAME, __version__
from anthropic_compliance_input.cli import build_parser
from anthropic_compliance_input.config import Config
from anthropic_compliance_input.timeutil import human_duration


def roff(text: str) -> str:
    return text.replace("\\", "\\\\").replace("-", "\\-").replace("\n.", "\n\\&.").replace("'", "\\(aq")


def subparsers(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append((f"{prefix}{name}", sub))
                out.extend(subparsers(sub, f"{prefix}{name} "))
    return out


def _default(value: object) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, datetime.timedelta):
        return f'"{human_duration(value.total_seconds())}"'
    return json.dumps(value)


def main() -> None:
    parser = build_parser()
    parser.prog = NAME
    date = datetime.date.today().isoformat()
    w = sys.stdout.write
    title = roff(NAME.upper())
    w(f'.TH {title} 1 "{date}" "{NAME} {__version__}" "User Commands"\n')
    w(f".SH NAME\n{roff(NAME)} \\- Anthropic Compliance API Activity Feed input plugin for log shippers\n")
    w(f".SH SYNOPSIS\n.nf\n{roff(parser.format_usage().removeprefix('usage: '))}.fi\n")
    w(f".SH DESCRIPTION\n.nf\n{roff(parser.format_help().split(chr(10), 2)[2])}.fi\n")
    for name, sub in subparsers(parser):
        sub.prog = f"{NAME} {name}"
        w(f".SH COMMAND: {roff(name.upper())}\n.nf\n{roff(sub.format_help())}.fi\n")
    w(".SH CONFIGURATION\nEvery key of the config file, with its default (conf/config.toml explains each):\n")
    for section, field in Config.model_fields.items():
        w(f".TP\n[{section}]\n.nf\n")
        for name, spec in field.annotation.model_fields.items():  # type: ignore[union-attr]
            w(roff(f"{name} = {_default(spec.default)}") + "\n")
        w(".fi\n")
    w(".SH ENVIRONMENT\n.TP\nANTHROPIC_COMPLIANCE_INPUT_CONFIG\nthe config file, when \\-\\-config is not given\n"
      ".PP\nThe key comes from the first of these that is set, then from the OS keyring (\\fBkey set\\fR); "
      "a key file beside a systemd credential is refused:\n"
      ".TP\nANTHROPIC_COMPLIANCE_API_KEY\nthe key itself (containers, tests)\n"
      ".TP\nANTHROPIC_COMPLIANCE_API_KEY_FILE\na key file, when [key] file is not set; mode 0600 or 0640\n"
      f".TP\nCREDENTIALS_DIRECTORY\nset by systemd: the credential {roff(NAME)}.api\\-key in it\n"
      ".TP\nANTHROPIC_COMPLIANCE_INPUT_SYSLOG_SOCKET\nthe syslog socket for \\-\\-log\\-target syslog "
      "(default /dev/log; a chroot or container may have it elsewhere)\n")
    w(f".SH FILES\n.TP\n/etc/{NAME}/config.toml\nconfiguration (no secrets); a tenant's is /etc/{NAME}/TENANT.toml\n"
      f".TP\n/var/lib/{NAME}/\nstate files, their locks and dead\\-letter files\n"
      f".TP\n/lib/systemd/system/{NAME}@.service, {NAME}@.timer, {NAME}\\-run@.service\nper\\-tenant units\n"
      f".TP\n/usr/share/doc/{NAME}/examples/\nFluent Bit, Vector, Fluentd, syslog\\-ng, systemd, Prometheus and Kubernetes examples\n")
    w(f".SH SEE ALSO\n/usr/share/doc/{NAME}/README.md\n")


if __name__ == "__main__":
    main()
