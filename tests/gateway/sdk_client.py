"""Runs inside the opengradient==1.1.4 virtualenv (never imported by og-settle's own tests).

Reads ``{"key", "url", "der", "modes"}`` on stdin (``der``: the TEE registry's public key, hex); uses the
unmodified SDK exactly as its documentation shows (``og.LLM.from_url``, ``ensure_opg_approval``, ``chat`` with
and without ``stream``, ``completion``) against the gateway, and checks every answer with the SDK's own
``tee_verify.verify_response`` against that key. Prints one JSON object.
"""

import asyncio
import json
import sys

import opengradient as og
from opengradient.client import tee_verify as tv

MODEL = "openai/stand-in-echo"
MESSAGES = [
    {"role": "developer", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
]


def verify(canonical, content, signature, timestamp, pem):
    """verify_response over what the SDK sent and received; the hashes it compares are recomputed by the SDK."""
    request_hash = tv.keccak(tv.canonical_request_bytes(canonical)).hex()
    output_hash = tv.keccak(content.encode("utf-8")).hex()
    body = {
        "tee_signature": signature,
        "tee_request_hash": request_hash,
        "tee_output_hash": output_hash,
        "tee_timestamp": timestamp,
        "tee_id": tv.tee_id_for_key(pem),
    }
    try:
        proof = tv.verify_response(
            canonical_request=canonical, response_body=body, response_content=content, signing_key_pem=pem
        )
        return {"ok": True, "tee_id": proof.tee_id, "request_hash": proof.request_hash}
    except tv.VerificationError as err:
        return {"ok": False, "error": str(err)}


async def run(cfg):
    cfg["pem"] = tv.pem_from_der(bytes.fromhex(cfg["der"]))
    llm = og.LLM.from_url(cfg["key"], cfg["url"])
    approval = llm.ensure_opg_approval(min_allowance=5.0)
    again = llm.ensure_opg_approval(min_allowance=5.0)
    out = {
        "approval": {
            "before": str(approval.allowance_before),
            "after": str(approval.allowance_after),
            "tx": approval.tx_hash,
            "second_tx": again.tx_hash,
        },
        "results": [],
    }
    for mode in cfg["modes"]:
        settlement = og.x402SettlementMode(mode)
        payload = {"model": "stand-in-echo", "messages": MESSAGES, "max_tokens": 64, "temperature": 0.0}
        _, canonical = tv.build_inner_request(payload)

        result = await llm.chat(model=MODEL, messages=MESSAGES, max_tokens=64, x402_settlement_mode=settlement)
        content = result.chat_output["content"]
        out["results"].append(
            {
                "mode": mode,
                "call": "chat",
                "content": content,
                "finish_reason": result.finish_reason,
                "blob_id": result.data_settlement_blob_id,
                "tx_hash": result.data_settlement_transaction_hash,
                "verify": verify(canonical, content, result.tee_signature, result.tee_timestamp, cfg["pem"]),
                "tee_timestamp": result.tee_timestamp,
            }
        )

        stream = await llm.chat(
            model=MODEL, messages=MESSAGES, max_tokens=64, x402_settlement_mode=settlement, stream=True
        )
        pieces, final = [], None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            if chunk.is_final:
                final = chunk
        content = "".join(pieces)
        out["results"].append(
            {
                "mode": mode,
                "call": "chat-stream",
                "content": content,
                "chunks": len(pieces),
                "finish_reason": final.choices[0].finish_reason if final and final.choices else None,
                "blob_id": final.data_settlement_blob_id if final else None,
                "verify": verify(canonical, content, final.tee_signature, final.tee_timestamp, cfg["pem"])
                if final
                else {"ok": False, "error": "no final chunk"},
            }
        )

        prompt = "Translate to French: good morning"
        result = await llm.completion(model=MODEL, prompt=prompt, max_tokens=32, x402_settlement_mode=settlement)
        canonical_completion = {"model": "stand-in-echo", "prompt": prompt, "temperature": 0.0, "max_tokens": 32}
        content = result.completion_output
        out["results"].append(
            {
                "mode": mode,
                "call": "completion",
                "content": content,
                "verify": verify(canonical_completion, content, result.tee_signature, result.tee_timestamp, cfg["pem"]),
            }
        )
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(json.load(sys.stdin)))))
