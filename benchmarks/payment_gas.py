"""Payment gas beside the x402 Permit2 proxies' (``payment-gas``).

The figures are the ones the gas tests measured on the replica and committed in ``gas-snapshot.json``
(``make gas-update`` refreshes them): PaymentFacilitator's single exact and upto settle and its batch of fifty
first-time payers, against the stand-in proxies on the same replica and the originals as FORMATS.md recorded
them on a Base fork (exact 82,551, upto 83,678).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

Row = tuple[str, str, str]

SNAPSHOT = Path(__file__).resolve().parents[1] / "gas-snapshot.json"
# The canonical proxies' single settle, measured on a Base fork (shared/reference/FORMATS.md).
REFERENCE_EXACT = 82_551
REFERENCE_UPTO = 83_678
BATCH_TARGET_SHARE = 0.7  # issue #14 target 5: a batched payment at most 0.7x the proxy's single one


def payment_gas(options: argparse.Namespace) -> list[Row]:
    del options
    gas = json.loads(SNAPSHOT.read_text())
    exact = gas["PaymentFacilitator.settle(exact)"]
    upto = gas["PaymentFacilitator.settle(upto)"]
    batched = gas["PaymentFacilitator.settleBatch(50 exact, 50 payers) per payment"]
    proxy_exact = gas["StandInX402ExactProxy.settle"]
    proxy_upto = gas["StandInX402UptoProxy.settle"]
    return [
        (
            "settle exact",
            f"{exact:,}",
            f"{exact / proxy_exact:.3f}x stand-in proxy {proxy_exact:,}, "
            f"{exact / REFERENCE_EXACT:.3f}x x402 proxy {REFERENCE_EXACT:,}",
        ),
        (
            "settle upto",
            f"{upto:,}",
            f"{upto / proxy_upto:.3f}x stand-in proxy {proxy_upto:,}, "
            f"{upto / REFERENCE_UPTO:.3f}x x402 proxy {REFERENCE_UPTO:,}",
        ),
        (
            "batch of 50 first-time payers, per payment",
            f"{batched:,}",
            f"{batched / REFERENCE_EXACT:.3f}x x402 exact proxy (target <= {BATCH_TARGET_SHARE}x = "
            f"{int(REFERENCE_EXACT * BATCH_TARGET_SHARE):,})",
        ),
    ]
