#!/usr/bin/env bash
# npm run lint: ESLint (type-checked rules) and Prettier's check side by side, both with caches under
# node_modules/.cache so a second run only looks at changed files. Fails if either fails.
set -uo pipefail
cd "$(dirname "$0")/.."
npx eslint --cache --cache-location node_modules/.cache/eslint/ . &
eslint=$!
npx prettier --check --cache --log-level warn .
prettier=$?
wait "$eslint"
eslint_rc=$?
exit $((eslint_rc || prettier))
