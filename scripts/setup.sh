#!/usr/bin/env bash
# Create .venv (if needed) and install avlab with the course and test extras, torch pinned by
# requirements/constraints.txt.
#
# Fast and quiet when nothing changed: .venv/avlab-setup.stamp holds a hash of what the install depends on
# (pyproject.toml, the constraints, this script, the venv's Python). pip runs only when that hash differs or the
# venv is broken (no python, avlab not importable from this checkout, no kernelspec). pip's output goes to
# .venv/setup.log and is shown only when pip fails. Force a reinstall: rm .venv/avlab-setup.stamp
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/avlab-setup.stamp
LOG=$VENV/setup.log
say() { echo "setup: $*"; }

if ! "$VENV/bin/python" -c "" 2>/dev/null; then  # missing, or its base Python has gone
  say "creating $VENV with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv --clear "$VENV"
fi

fingerprint() {
  { "$VENV/bin/python" -c 'import sys; print(sys.version)'
    cat pyproject.toml requirements/constraints.txt scripts/setup.sh; } | sha256sum | cut -d' ' -f1
}

# Healthy: avlab imports from this checkout (run from / without PYTHONPATH, so the working folder cannot stand in
# for the install) and the Jupyter kernel is registered.
healthy() {
  [ -f "$VENV/share/jupyter/kernels/python3/kernel.json" ] &&
    (cd / && env -u PYTHONPATH "$OLDPWD/$VENV/bin/python" -c '
import sys, avlab
from pathlib import Path
sys.exit(Path(avlab.__file__).resolve().parent != Path(sys.argv[1], "avlab").resolve())' "$OLDPWD") 2>/dev/null
}

want=$(fingerprint)
if [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] && healthy; then
  say "$VENV is up to date (pyproject.toml, constraints and Python unchanged): pip skipped"
  exit 0
fi

say "installing avlab[course,test] into $VENV, torch pinned by requirements/constraints.txt (pip log: $LOG)"
rm -f "$STAMP"
start=$SECONDS
if ! {
  "$VENV/bin/python" -m pip install --upgrade pip &&
    "$VENV/bin/python" -m pip install -c requirements/constraints.txt -e ".[course,test]" &&
    "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3
} >"$LOG" 2>&1; then
  # pip's own errors, without the notices about this machine's pip configuration that nobody here can act on
  say "pip failed; the end of $LOG:" >&2
  grep -v -E "^(WARNING: Location '.*' is ignored|  Link requires a different Python)" "$LOG" | tail -n 40 >&2
  exit 1
fi
grep "^ERROR:" "$LOG" >&2 || true  # pip reports some problems (dependency conflicts) and still exits 0
echo "$want" >"$STAMP"
say "installed in $((SECONDS - start)) s"
(cd / && env -u PYTHONPATH "$OLDPWD/$VENV/bin/python" -c "import avlab; avlab.about()")
