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
exec .venv/bin/jupyter lab chapters/ "$@"
