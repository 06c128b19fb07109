#!/bin/sh
# Runs a command as an unprivileged user ("nobody") when the tests run as
# root, so that file permission checks apply; otherwise runs it as is.
if [ "$(id -u)" = 0 ]; then
  exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
fi
exec "$@"
