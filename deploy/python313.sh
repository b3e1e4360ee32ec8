#!/usr/bin/env bash
# Prints the path of a Python 3.13 interpreter: python3.13 on PATH, else one installed by pyenv.
set -euo pipefail
if command -v python3.13 >/dev/null 2>&1 && python3.13 -c 'import sys' >/dev/null 2>&1; then
  command -v python3.13; exit 0
fi
for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13; do
  if [ -x "$candidate" ]; then echo "$candidate"; exit 0; fi
done
echo "no Python 3.13 found: install it (pyenv install 3.13) or put python3.13 on PATH" >&2
exit 1
