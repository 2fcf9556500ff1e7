#!/bin/sh
# Make the state directory the shippers write to. Fluent Bit and syslog-ng run as root; Vector
# runs as user vector, so the directory is group-writable for group anthropic-compliance-input
# and vector joins that group when it exists. Never touches the config (a conffile).
set -e
getent group anthropic-compliance-input >/dev/null 2>&1 || groupadd --system anthropic-compliance-input
install -d -m 2770 -o root -g anthropic-compliance-input /var/lib/anthropic-compliance-input
if getent passwd vector >/dev/null 2>&1; then
    usermod -a -G anthropic-compliance-input vector || true
fi
exit 0
