"""What ``make demo`` runs: the whole system on fresh local replicas, reported.

Two halves. The synthetic one (:func:`run_demo`) feeds the relayer hundreds of TEE-signed records and x402
payments directly and proves every mode on chain. The HTTP one (:func:`run_http_demo`) runs the product flow end to
end: clients pay the gateway (``og-settle gateway serve``) over HTTP, the stand-in TEE signs, the facilitator
settles the payments through the canonical x402 proxies, the relayer settles the inferences, and the chain proves
each mode.
"""

from og_settle.demo._http import HttpDemoReport, format_http_report, run_http_demo
from og_settle.demo._synthetic import MODES, DemoReport, format_report, run_demo

__all__ = ["MODES", "DemoReport", "HttpDemoReport", "format_http_report", "format_report", "run_demo", "run_http_demo"]
