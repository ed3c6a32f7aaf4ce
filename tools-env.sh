# Source this for a shell that runs the project's tools directly: `. ./tools-env.sh`.
export OG_SETTLE_HOME="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
export SOLCX_BINARY_PATH="$OG_SETTLE_HOME/toolchain/solc"
export PATH="$OG_SETTLE_HOME/node_modules/@foundry-rs/anvil-linux-amd64/bin:$OG_SETTLE_HOME/.venv/bin:$PATH"
