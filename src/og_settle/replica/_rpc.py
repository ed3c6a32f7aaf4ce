"""A minimal JSON-RPC client over urllib, so the replica needs neither web3 nor Ape."""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from typing import Any


class RpcError(RuntimeError):
    """The node answered a JSON-RPC call with an error object."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        super().__init__(f"{method}: {error.get('message', error)}")
        self.method = method
        self.error = error


class JsonRpc:
    """Blocking JSON-RPC 2.0 over HTTP."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self.timeout = timeout
        self._ids = itertools.count(1)

    def call(self, method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)})
        request = urllib.request.Request(
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            reply = json.loads(response.read())
        if "error" in reply:
            raise RpcError(method, reply["error"])
        return reply["result"]

    def is_up(self) -> bool:
        try:
            self.call("eth_chainId")
        except (OSError, urllib.error.URLError, RpcError, ValueError):
            return False
        return True

    def wait_for_receipt(self, tx_hash: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            receipt = self.call("eth_getTransactionReceipt", tx_hash)
            if receipt is not None:
                if int(receipt["status"], 16) != 1:
                    raise RpcError("eth_getTransactionReceipt", {"message": f"transaction {tx_hash} reverted"})
                return dict(receipt)
            time.sleep(0.05)
        raise TimeoutError(f"no receipt for {tx_hash} after {timeout}s")
