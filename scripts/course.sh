#!/usr/bin/env bash
# Set up, then open the course: JupyterLab on chapters/.
#   bash scripts/course.sh              # JupyterLab on the student chapters
#   bash scripts/course.sh --headless   # execute every solution notebook, print each chapter's headline numbers
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${1:-}" = "--headless" ]; then
  shift
  export MPLBACKEND=Agg
  exec .venv/bin/python -m avlab.course run "$@"
fi
# Kernels get CurveZMQ keys (ipykernel's kernelspec declares support), so their traffic is encrypted and
# ipykernel has no plain-TCP warning to print; skipped where pyzmq was built without CurveZMQ.
encryption=()
if .venv/bin/python -c "import sys, zmq; sys.exit(not zmq.has('curve'))" 2>/dev/null; then
  encryption=(--KernelManager.transport_encryption=auto)
fi
exec .venv/bin/jupyter lab chapters/ ${encryption[@]+"${encryption[@]}"} "$@"
