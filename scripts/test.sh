#!/usr/bin/env bash
# The whole test suite: reference tools, lint (ESLint + Prettier), a build, then every test file on node's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-test-deps.sh
npm run -s lint
npm run -s build
files=("$@")
((${#files[@]})) || files=(test/*.test.ts)
exec node --import tsx --test --test-concurrency=2 "${files[@]}"
