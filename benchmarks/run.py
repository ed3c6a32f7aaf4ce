"""og-settle benchmarks (``make bench``): prints one small table per benchmark.

Benchmarks register themselves with ``@benchmark("name")``; each takes the parsed options and returns rows
``(measurement, value, note)``. Run all of them, or pick some with ``--only NAME``.

Registered:

* ``batch-vs-openzeppelin`` and ``batch-1m``: the batch tools as whole processes, against
  ``@openzeppelin/merkle-tree`` and the machine's keccak floor (``batch.py``).
* ``facilitator-verify``: 200 concurrent clients send 2,000 ``POST /verify`` calls (distinct stock exact payments
  signed by the x402 SDK) on loopback to ``og-settle facilitator serve`` and, side by side on the same replica,
  to a reference facilitator built from the x402 SDK's own facilitator classes; requests/s, p50/p90/p99 latency,
  valid answers and errors for each (``facilitator_load.py``).
* ``gateway-paid``: paid chat requests through ``og-settle gateway serve`` (verify, stand-in model, TEE signature,
  settlement on chain); requests/s, p50/p99 latency, and the share of the gateway's time in ``/verify`` and
  ``/settle`` (``gateway_load.py``).
* ``payment-gas``: PaymentFacilitator's single exact/upto settle and batched payment gas (from the committed gas
  snapshot) beside the x402 proxies' figures (``payment_gas.py``).
* ``rsa-gas``: RSA-2048 (OpenGradient TEE) gas on an anvil with the replica's modexp pricing and on one with
  ``--hardfork osaka`` (EIP-7883): PSS verification alone, settleOpenGradient, heartbeat, registration
  (``rsa_gas.py``).
* ``individual-gas``: gas per individual inference, ``settleIndividual`` alone against a
  ``settleIndividualBatch`` of 20 (``individual_gas.py``).
* ``queue-intake``: records/s a queue store takes (``add_items``), SQLite and PostgreSQL (``queue_intake.py``).
* ``relayer-bulk``: ``og-settle relayer submit`` of 100,000 TEE-signed leaves (records/s) and the bulk run (submit,
  one 100,000-leaf batch built and settled on a replica chain), whole processes with their peak memory, on SQLite
  and PostgreSQL; the in-process intake rate and the gas per individual inference in a batch beside them
  (``relayer_bulk.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from batch import BATCH_BENCHMARKS
from facilitator_load import add_options as add_facilitator_load_options
from gateway_load import add_options as add_gateway_load_options
from individual_gas import individual_gas
from payment_gas import payment_gas
from queue_intake import queue_intake
from relayer_bulk import relayer_bulk
from rsa_gas import rsa_gas

Row = tuple[str, str, str]
Benchmark = Callable[[argparse.Namespace], list[Row]]
BENCHMARKS: dict[str, Benchmark] = dict(BATCH_BENCHMARKS)
BENCHMARKS["rsa-gas"] = rsa_gas
BENCHMARKS["individual-gas"] = individual_gas
BENCHMARKS["payment-gas"] = payment_gas
BENCHMARKS["queue-intake"] = queue_intake
BENCHMARKS["relayer-bulk"] = relayer_bulk


def benchmark(name: str) -> Callable[[Benchmark], Benchmark]:
    def register(function: Benchmark) -> Benchmark:
        BENCHMARKS[name] = function
        return function

    return register


@benchmark("facilitator-verify")
def facilitator_verify(options: argparse.Namespace) -> list[Row]:
    """Concurrent /verify on loopback: og-settle's server vs the x402 SDK's reference facilitator (see
    ``facilitator_load.py``)."""
    from facilitator_load import verify_load

    return verify_load(options)


@benchmark("gateway-paid")
def gateway_paid(options: argparse.Namespace) -> list[Row]:
    """Paid chat requests through ``og-settle gateway serve`` on loopback (see ``gateway_load.py``)."""
    from gateway_load import gateway_paid as run

    return run(options)


def print_table(title: str, rows: list[Row]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    print(f"\n{title}")
    print("-" * len(title))
    for measurement, value, note in rows:
        print(f"  {measurement:<{widths[0]}}  {value:>{widths[1]}}  {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only this benchmark")
    parser.add_argument("--compare-leaves", type=int, default=100_000, help="leaves for batch-vs-openzeppelin")
    parser.add_argument("--large-leaves", type=int, default=1_000_000, help="leaves for batch-1m")
    add_facilitator_load_options(parser)
    add_gateway_load_options(parser)
    options = parser.parse_args(argv)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"og-settle benchmarks (Python {sys.version.split()[0]}; {os.cpu_count()} CPUs, load average {load})")
    for name in options.only or list(BENCHMARKS):
        print_table(name, BENCHMARKS[name](options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
