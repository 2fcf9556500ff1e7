#!/bin/sh
# Make the state directory the shippers write to. Fluent Bit and syslog-ng run as root; Vector
# (user vector) and Fluentd (user _fluentd for fluent-package, td-agent for td-agent 4) do not,
# so the directory is group-writable for group anthropic-compliance-input and each of those
# users joins that group when it exists. Never touches the config (a conffile).
set -e
getent group anthropic-compliance-input >/dev/null 2>&1 || groupadd --system anthropic-compliance-input
# The system user of the per-tenant template units (anthropic-compliance-input@.service): a
# static user, so every tenant's state file in the one state directory stays its own across boots.
getent passwd anthropic-compliance-input >/dev/null 2>&1 || useradd --system --gid anthropic-compliance-input \
    --home-dir /var/lib/anthropic-compliance-input --no-create-home --shell /usr/sbin/nologin \
    --comment "Anthropic Compliance API collector" anthropic-compliance-input
install -d -m 2770 -o root -g anthropic-compliance-input /var/lib/anthropic-compliance-input
for user in vector _fluentd td-agent; do
    if getent passwd "$user" >/dev/null 2>&1; then
        usermod -a -G anthropic-compliance-input "$user" || true
    fi
done
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload >/dev/null 2>&1 || true  # the template units; none is enabled
fi
exit 0
