#!/usr/bin/env bash
# Set up distgnn: a virtual environment (unless one is active), torch, and the package.
#
#   scripts/setup.sh [EXTRAS]      EXTRAS: comma-separated extras, default "test"
#                                  (test, bench, scatter, dgl)
#
# - Creates .venv when no virtual environment is active; uses the active one otherwise.
# - Installs torch==2.13.0 (a CPU build here) only when no torch is importable: an unpinned
#   torch would pull several GB of CUDA packages.
# - Never replaces a torch you already have: the installed version is pinned while the package
#   and its extras are installed (pip fails rather than swap it).
# - Idempotent: a stamp records what was installed; a re-run with nothing changed takes ~1 s.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-test}"

if [ -n "${VIRTUAL_ENV:-}" ]; then
  py="$VIRTUAL_ENV/bin/python"
  stamp="$VIRTUAL_ENV/.distgnn-setup"
else
  if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
  fi
  py=.venv/bin/python
  stamp=.venv/.distgnn-setup
fi

want="$(cat pyproject.toml | sha256sum | cut -c1-16) extras=$extras"
if [ -f "$stamp" ] && grep -qxF "$want" "$stamp" && "$py" -c "import torch, distgnn" 2>/dev/null; then
  exit 0
fi

if ! "$py" -c "import torch" 2>/dev/null; then
  echo "setup: no torch found; installing torch==2.13.0"
  "$py" -m pip install --quiet "torch==2.13.0"
fi
torch_version="$("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null)"
echo "setup: using torch $torch_version; installing distgnn[$extras]"
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "torch==$torch_version" > "$constraints"
"$py" -m pip install --quiet --disable-pip-version-check -c "$constraints" -e ".[$extras]"
echo "$want" >> "$stamp"
