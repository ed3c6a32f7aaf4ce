#!/bin/sh
# One clear line when Node.js is missing or too old; og-settle's compilers and anvil come from npm.
if ! command -v node >/dev/null 2>&1; then
  echo "og-settle: Node.js 20 or newer is required (node is not on PATH)" >&2; exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "og-settle: Node.js 20 or newer is required, found $(node --version)" >&2; exit 1
fi
