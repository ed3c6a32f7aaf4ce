"""The local Base Sepolia replica: anvil (chain id 84532, OP-stack mode), genuine Permit2, OPG."""

from og_settle.replica._node import (
    DEV_MNEMONIC,
    FORK_NODE_ENV,
    ReplicaInfo,
    create2_address,
    fork_node_host,
    free_port,
    running_replica,
    upstream_rpc_override,
)
from og_settle.replica._toolchain import compile_permit2, project_root

__all__ = [
    "DEV_MNEMONIC",
    "FORK_NODE_ENV",
    "ReplicaInfo",
    "compile_permit2",
    "create2_address",
    "fork_node_host",
    "free_port",
    "project_root",
    "running_replica",
    "upstream_rpc_override",
]
