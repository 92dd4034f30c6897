# Shared set-up for scripts/demo and scripts/test: make sure uv exists and the locked
# environment is installed. Sourced, not run. Needs only Python 3.11 and the OS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.local/bin:$PATH"
if ! command -v uv >/dev/null 2>&1; then
  echo "uv をインストールしています…" >&2
  python3.11 -m pip install --quiet --user "uv==0.13.9" 2>/dev/null \
    || python3 -m pip install --quiet "uv==0.13.9" 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages "uv==0.13.9"
fi
export UV_PYTHON="${UV_PYTHON:-3.11}"
uv sync --frozen --quiet
