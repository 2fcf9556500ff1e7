#!/bin/sh
# with-secret-service.sh CMD [ARGS...]: run CMD on a private D-Bus session bus with an unlocked
# gnome-keyring (a real Secret Service), then stop both. For tests only.
set -eu
: "${TEST_KEYRING_PASSWORD:=ci-only-not-secret}"   # must be non-empty (empty => prompt => failure)
export TEST_KEYRING_PASSWORD
export XDG_DATA_HOME="${XDG_DATA_HOME:-$(mktemp -d)}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
chmod 700 "$XDG_RUNTIME_DIR"
exec dbus-run-session -- sh -c '
  printf %s "$TEST_KEYRING_PASSWORD" |
    gnome-keyring-daemon --foreground --unlock --components=secrets >/dev/null 2>&1 &
  gk=$!
  i=0
  until dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
          org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null |
        grep -q "boolean true"; do
    i=$((i+1)); [ "$i" -le 100 ] || { echo "secret service did not start" >&2; kill "$gk"; exit 1; }
    sleep 0.1
  done
  rc=0; "$@" || rc=$?
  kill "$gk" 2>/dev/null; wait "$gk" 2>/dev/null || true
  exit "$rc"' sh "$@"
