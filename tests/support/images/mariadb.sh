#!/bin/sh
# Stands in for the official MariaDB image's entrypoint, for what the
# operator relies on: an empty data directory is initialised with
# MARIADB_DATABASE, MARIADB_USER/MARIADB_PASSWORD (all rights on that
# database) and root's MARIADB_ROOT_PASSWORD; then mariadbd runs with the
# container's args. Runs Debian's MariaDB (apt), as the Pod's user.
set -eu
data=/var/lib/mysql
if [ ! -d "$data/mysql" ]; then
  mariadb-install-db --no-defaults --datadir="$data" --skip-test-db \
    --auth-root-authentication-method=normal >/dev/null
  mariadbd --no-defaults --datadir="$data" --skip-networking \
    --socket=/run/mysqld/init.sock --skip-log-bin &
  pid=$!
  i=0
  until mariadb --no-defaults --socket=/run/mysqld/init.sock -uroot -e 'SELECT 1' >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -lt 120 ] || { echo "mariadbd did not start" >&2; exit 1; }
    sleep 0.5
  done
  mariadb --no-defaults --socket=/run/mysqld/init.sock -uroot <<SQL
CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;
CREATE USER '$MARIADB_USER'@'%' IDENTIFIED BY '$MARIADB_PASSWORD';
GRANT ALL ON \`$MARIADB_DATABASE\`.* TO '$MARIADB_USER'@'%';
ALTER USER 'root'@'localhost' IDENTIFIED BY '$MARIADB_ROOT_PASSWORD';
FLUSH PRIVILEGES;
SQL
  kill "$pid"
  wait "$pid" || true
fi
exec mariadbd --no-defaults --datadir="$data" --bind-address=0.0.0.0 --port=3306 \
  --socket=/run/mysqld/mysqld.sock "$@"
