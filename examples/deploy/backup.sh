#!/usr/bin/env bash
# Nightly backup of a playbook installation: the database, and the files it is built from.
# See docs/deployment.md. Run it as the service user (it reads the same settings), e.g. from
# cron:   15 2 * * *  playbook  /opt/playbook/examples/deploy/backup.sh
#
# It reads the settings through playbook itself, so it backs up the database the service
# uses (PLAYBOOK_DATABASE_URL wins over [database] url) and the folders the config names.
#
#   PostgreSQL  pg_dump -Fc            -> BACKUP_DIR/<time>/playbook.dump
#   SQLite      online backup (WAL-safe, the service may keep running)
#                                      -> BACKUP_DIR/<time>/playbook.db
#   files       the config's folder, protocols, templates, directory files and the
#               console, files and CAP folders -> BACKUP_DIR/<time>/files.tar.gz
#
# The secrets file is not copied: keep the secrets in the city's password vault.
# Copy BACKUP_DIR to another machine afterwards; a backup on the same disk is not a backup.
set -euo pipefail
umask 077

CONFIG=${CONFIG:-/srv/playbook/playbook.toml}   # the file `playbook run --config` reads
WORKDIR=${WORKDIR:-$(dirname "$CONFIG")}       # the service's WorkingDirectory
ENV_FILE=${ENV_FILE:-/etc/playbook/playbook.env}
PYTHON=${PYTHON:-/opt/playbook/.venv/bin/python}
BACKUP_DIR=${BACKUP_DIR:-/var/backups/playbook}
KEEP_DAYS=${KEEP_DAYS:-30}

# The database URL from the secrets file, read as data (never executed), unless it is set.
if [[ -z "${PLAYBOOK_DATABASE_URL:-}" && -r "$ENV_FILE" ]]; then
    url=$(sed -n 's/^[[:space:]]*PLAYBOOK_DATABASE_URL=//p' "$ENV_FILE" | tail -n 1)
    url=${url%\'}; url=${url#\'}; url=${url%\"}; url=${url#\"}
    if [[ -n "$url" ]]; then
        export PLAYBOOK_DATABASE_URL=$url
    fi
fi

# What to back up, from the settings: tab-separated lines `kind<TAB>value`.
plan=$(cd "$WORKDIR" && "$PYTHON" - "$CONFIG" <<'PY'
import os
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from playbook.config import load_settings

settings = load_settings(Path(sys.argv[1]))
url = make_url(settings.database_url())
if url.get_backend_name() == "sqlite":
    print(f"sqlite\t{os.path.abspath(url.database or '')}")
else:
    print(f"postgresql\t{url.set(drivername='postgresql', password=None).render_as_string(hide_password=False)}")
    if url.password:
        print(f"password\t{url.password}")
paths = [settings.base_dir.resolve(), settings.path(settings.paths.protocols),
         *settings.directory_files().values(),
         *(settings.path(p) for p in (settings.output.console_dir, settings.output.files_dir,
                                      settings.output.cap_dir))]
templates = settings.templates_root()  # unset: the message_templates/ beside the playbooks
paths.append(templates or settings.path(settings.paths.protocols).parent / "message_templates")
kept: list[Path] = []
for path in sorted(set(paths), key=lambda p: len(p.parts)):
    if path.exists() and not any(path.is_relative_to(k) for k in kept):
        kept.append(path)
for path in kept:
    print(f"path\t{path}")
PY
)

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
dest="$BACKUP_DIR/$stamp"
mkdir -p "$dest"
backups=$(cd "$BACKUP_DIR" && pwd -P)

kind="" target="" password="" paths=()
while IFS=$'\t' read -r key value; do
    case "$key" in
        sqlite|postgresql) kind=$key target=$value ;;
        password) password=$value ;;
        path) paths+=("${value#/}") ;;
    esac
done <<< "$plan"

case "$kind" in
    postgresql)
        # The password goes through the environment, not the command line (ps shows that).
        PGPASSWORD=$password pg_dump --format=custom --no-password --file="$dest/playbook.dump" \
            --dbname="$target"
        pg_restore --list "$dest/playbook.dump" > /dev/null  # the dump is readable
        ;;
    sqlite)
        if [[ ! -f "$target" ]]; then  # sqlite3 would create an empty file there
            echo "backup.sh: no SQLite database at $target" >&2
            exit 1
        fi
        if command -v sqlite3 > /dev/null; then
            sqlite3 "$target" ".backup '$dest/playbook.db'"
        else
            "$PYTHON" - "$target" "$dest/playbook.db" <<'PY'
import sqlite3
import sys

source, copy = sqlite3.connect(sys.argv[1]), sqlite3.connect(sys.argv[2])
with copy:
    source.backup(copy)
source.close()
copy.close()
PY
        fi
        "$PYTHON" - "$dest/playbook.db" <<'PY'
import sqlite3
import sys

result = sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0]
if result != "ok":
    sys.exit(f"backup copy failed its integrity check: {result}")
PY
        ;;
    *)
        echo "backup.sh: could not read the database URL from $CONFIG" >&2
        exit 1
        ;;
esac

# The files; a live SQLite file inside one of these folders is left out (copied above), and
# so are the backups, should they be kept inside one.
tar --create --gzip --file="$dest/files.tar.gz" --directory=/ --exclude="${backups#/}" \
    --exclude='*.db' --exclude='*.db-wal' --exclude='*.db-shm' --exclude='*.db-journal' \
    "${paths[@]}"

# Keep KEEP_DAYS days of backups.
find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -name '20*' -mtime +"$KEEP_DAYS" \
    -exec rm -rf {} +

echo "backup.sh: the $kind database and ${#paths[@]} path(s) saved in $dest"
