#!/bin/sh
# The image's entrypoint: secrets come from files, never from the environment or .env (which
# `docker inspect` and the compose file show to anyone who can read them).
#
#   /run/secrets/glassgate_admin_password  the first admin's password (otherwise one is generated
#                                          and printed once in the logs)
#   /run/secrets/sentry_dsn                turns on error reporting to Sentry
#
# A file that is absent is simply not used; one that is present but unreadable stops the start
# (a password silently ignored would leave the admin with a generated one they never saw).
# GLASSGATE_SECRETS_DIR moves the directory; explicit *_FILE variables win over it.
set -eu
secrets=${GLASSGATE_SECRETS_DIR:-/run/secrets}

readable() {
  [ -e "$1" ] || return 1
  [ -r "$1" ] && return 0
  echo "glassgate: $1 exists but uid $(id -u) cannot read it (chown $(id -u) it, or chmod 644)" >&2
  exit 1
}

if [ -z "${GLASSGATE_ADMIN_PASSWORD:-}${GLASSGATE_ADMIN_PASSWORD_FILE:-}" ] && readable "$secrets/glassgate_admin_password"; then
  export GLASSGATE_ADMIN_PASSWORD_FILE="$secrets/glassgate_admin_password"
fi

# The gateway reads SENTRY_DSN only from the environment: read the file here, so the DSN is in
# this process's environment and not in the container's configuration.
if [ -z "${SENTRY_DSN_FILE:-}" ] && [ -z "${SENTRY_DSN:-}" ] && readable "$secrets/sentry_dsn"; then
  SENTRY_DSN_FILE="$secrets/sentry_dsn"
fi
if [ -n "${SENTRY_DSN_FILE:-}" ]; then
  readable "$SENTRY_DSN_FILE" || { echo "glassgate: SENTRY_DSN_FILE: \"$SENTRY_DSN_FILE\" does not exist" >&2; exit 1; }
  SENTRY_DSN=$(tr -d ' \t\r\n' < "$SENTRY_DSN_FILE")
  export SENTRY_DSN
  unset SENTRY_DSN_FILE
fi

exec bun run src/cli.ts up --init "$@"
