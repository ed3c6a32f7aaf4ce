"""Runs inside the OpenGradient SDK's own virtualenv (PyPI ``opengradient==1.1.4``, unmodified), without og_settle.

Reads one JSON object on standard input and prints one JSON object, computed with the SDK's own functions
(``opengradient.client.tee_verify``):

- ``requests``: for each chat request, ``{"hash": keccak256(canonical_request_bytes(build_inner_request(r)[1]))}``,
  or ``{"error": "<exception type>"}`` when the SDK refuses it;
- ``responses``: for each response body, ``keccak256(response_content_for_hash(body))``;
- ``keys``: for each PEM public key, ``tee_id_for_key(pem)``;
- ``verify``: for each ``{request, response, pem}``, whether the SDK's ``verify_response`` accepts it (and the
  error's first words when it does not).
"""

import json
import sys

from eth_hash.auto import keccak
from opengradient.client.tee_verify import (
    build_inner_request,
    canonical_request_bytes,
    response_content_for_hash,
    tee_id_for_key,
    verify_response,
)


def request_hash(body):
    try:
        _wire, canonical = build_inner_request(body)
        return {"hash": keccak(canonical_request_bytes(canonical)).hex()}
    except Exception as err:  # the SDK raises UnsupportedRequestError, and AttributeError/ValueError on odd shapes
        return {"error": type(err).__name__}


def check(case):
    try:
        _wire, canonical = build_inner_request(case["request"])
        verify_response(
            canonical_request=canonical,
            response_body=case["response"],
            response_content=response_content_for_hash(case["response"]),
            signing_key_pem=case["pem"],
        )
    except Exception as err:
        return {"ok": False, "error": f"{type(err).__name__}: {str(err)[:60]}"}
    return {"ok": True}


def main():
    job = json.load(sys.stdin)
    out = {
        "requests": [request_hash(body) for body in job.get("requests", [])],
        "responses": [keccak(response_content_for_hash(b).encode("utf-8")).hex() for b in job.get("responses", [])],
        "keys": [tee_id_for_key(pem) for pem in job.get("keys", [])],
        "verify": [check(case) for case in job.get("verify", [])],
    }
    print(json.dumps(out))


main()
