#!/bin/sh
# On purge (deb), remove the state (cursors, dead letters) and the user and group the package created.
# rpm never passes "purge": state, user and group stay after an erase, as rpm conventions expect.
set -e
if [ "$1" = "purge" ]; then
    rm -rf /var/lib/anthropic-compliance-input
    if getent passwd anthropic-compliance-input >/dev/null 2>&1; then
        userdel anthropic-compliance-input || true
    fi
    if getent group anthropic-compliance-input >/dev/null 2>&1; then
        groupdel anthropic-compliance-input || true
    fi
fi
exit 0
