"""Payment gas beside the x402 Permit2 proxies' (``payment-gas``).

The figures are the ones the gas tests measured on the replica and committed in ``gas-snapshot.json``
(``make gas-update`` refreshes them): PaymentFacilitator's single exact and upto settle and its batch of fifty
first-time payers, in the packed calldata form og-settle's client sends (``settlePacked``/``settleBatchPacked``)
and in the ABI form (``settle``/``settleBatch``), against the stand-in proxies on the same replica and the
originals as FORMATS.md recorded them on a Base fork (exact 82,551, upto 83,678).
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
    proxy = {"exact": gas["StandInX402ExactProxy.settle"], "upto": gas["StandInX402UptoProxy.settle"]}
    reference = {"exact": REFERENCE_EXACT, "upto": REFERENCE_UPTO}
    rows: list[Row] = []
    for form, single in (("packed", "settlePacked"), ("ABI", "settle")):
        for scheme in ("exact", "upto"):
            figure = gas[f"PaymentFacilitator.{single}({scheme})"]
            rows.append(
                (
                    f"settle {scheme} ({form})",
                    f"{figure:,}",
                    f"{figure / proxy[scheme]:.3f}x stand-in proxy {proxy[scheme]:,}, "
                    f"{figure / reference[scheme]:.3f}x x402 proxy {reference[scheme]:,} "
                    f"({figure - reference[scheme]:+,})",
                )
            )
    target = int(REFERENCE_EXACT * BATCH_TARGET_SHARE)
    for form, batch in (("packed", "settleBatchPacked"), ("ABI", "settleBatch")):
        batched = gas[f"PaymentFacilitator.{batch}(50 exact, 50 payers) per payment"]
        rows.append(
            (
                f"batch of 50 first-time payers, per payment ({form})",
                f"{batched:,}",
                f"{batched / REFERENCE_EXACT:.3f}x x402 exact proxy (target <= {BATCH_TARGET_SHARE}x = {target:,}, "
                f"{batched - target:+,})",
            )
        )
    return rows
