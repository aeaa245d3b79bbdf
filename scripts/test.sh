#!/usr/bin/env bash
# Set up, then run the whole test suite: library unit tests, the generated-files check, and every
# solution notebook executed by nbval (its assert cells check each chapter's numbers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
.venv/bin/python -m pytest tests solutions --nbval-lax --nbval-current-env --nbval-cell-timeout=900 -p no:cacheprovider "$@"
