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
# PDFs (the ledger, later the letters) are drawn by WeasyPrint, which needs pango, and their
# Japanese text by Noto CJK. Both come from Debian's packages.
if ! ldconfig -p 2>/dev/null | grep -q "libpangoft2-1.0.so.0" \
  || ! fc-list 2>/dev/null | grep -q "Noto Sans CJK"; then
  if [ "$(id -u)" = 0 ]; then
    echo "PDF 用のライブラリ（pango）と日本語フォントをインストールしています…" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 \
      fonts-noto-cjk >/dev/null
  else
    echo "PDF の出力に pango と日本語フォントが必要です:" \
      "sudo apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk" >&2
  fi
fi
export UV_PYTHON="${UV_PYTHON:-3.11}"
uv sync --frozen --quiet
