#!/bin/sh
# Grafana's admin password, never admin/admin: /run/secrets/grafana_admin_password when present
# (GLASSGATE_SECRETS_DIR moves the directory), otherwise one generated on the first start, kept in
# Grafana's data volume and printed once.
# Grafana uses it only when it creates its database; after that the password is Grafana's own
# (change it in Grafana; this file does not reset it). Then runs the image's own command.
set -eu
data=${GF_PATHS_DATA:-/var/lib/grafana}
given=${GLASSGATE_SECRETS_DIR:-/run/secrets}/grafana_admin_password
generated=$data/glassgate_admin_password

if [ -e "$given" ]; then
  [ -r "$given" ] || { echo "grafana: $given exists but uid $(id -u) cannot read it (chown $(id -u) it, or chmod 644)" >&2; exit 1; }
  [ -s "$given" ] || { echo "grafana: $given is empty" >&2; exit 1; }
  export GF_SECURITY_ADMIN_PASSWORD__FILE="$given"
elif [ -s "$generated" ]; then
  export GF_SECURITY_ADMIN_PASSWORD__FILE="$generated"
elif [ -e "$data/grafana.db" ]; then
  # An existing database keeps the password it has; a new file would only mislead.
  echo "grafana: keeping the admin password of the existing database in $data"
else
  umask 077
  password=$(tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 20)
  printf '%s\n' "$password" > "$generated"
  export GF_SECURITY_ADMIN_PASSWORD__FILE="$generated"
  echo "grafana: first admin \"${GF_SECURITY_ADMIN_USER:-admin}\" has the generated password: $password"
fi
exec "$@"
