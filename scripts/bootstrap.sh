# Sourced by scripts/serve and scripts/test: make this machine able to run the project.
# Idempotent and quiet when nothing needs doing. Usage: bootstrap <requirements file> [postgres]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

_log() { printf '[bootstrap] %s\n' "$*" >&2; }

_apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      _log "need root (or sudo) to install: $*"; return 1
    fi
  fi
  _log "installing $* with apt-get"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

bootstrap() {
  local requirements="$1" want_postgres="${2:-}"
  local python="${PYTHON:-python3.11}"
  command -v "$python" >/dev/null 2>&1 || python="python3"
  if [ ! -x "$VENV/bin/python" ]; then
    _log "creating virtual environment in .venv"
    "$python" -m venv "$VENV"
  fi
  # Reinstall only when the requirement files change.
  local stamp="$VENV/.installed-$(basename "$requirements")"
  local digest
  digest="$(cat "$ROOT"/requirements*.txt | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    _log "installing Python packages from $(basename "$requirements")"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$ROOT/$requirements"
    echo "$digest" > "$stamp"
  fi
  if [ -z "${REDIS_URL:-}" ] || [ -n "$want_postgres" ]; then
    command -v redis-server >/dev/null 2>&1 || _apt_install redis-server
  fi
  # The console's browser tests (tests/console/) drive Debian's Chromium: Playwright's own
  # browser download is not possible everywhere, and the distribution's is enough.
  if [ "$requirements" = "requirements-dev.txt" ]; then
    command -v chromium >/dev/null 2>&1 || _apt_install chromium
    # The pages are Chinese first: without a CJK font their screenshots show boxes.
    [ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || _apt_install fonts-wqy-microhei
  fi
  if [ -n "$want_postgres" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    _apt_install postgresql
  fi
}
