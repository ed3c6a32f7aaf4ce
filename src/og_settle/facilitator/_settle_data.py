"""``POST /settle_data``: OpenGradient's settlement data, queued for the relayer.

A TEE gateway sends each inference's settlement data to its facilitator as OpenGradient's inference facilitator
expects it: the headers ``x-settlement-type`` (``private``, ``batch`` or ``individual``; SDK and product-document
names are read too) and ``x-settlement-data`` (base64 JSON, see :class:`og_settle.tee.SettlementData`), with a JSON
body that is ignored (``{}``; an empty body is accepted too). The record goes through the relayer's own intake
(:func:`og_settle.relayer.parse_settlement_data`: shape, time window, and the leaf's signer against the TEE
registry's active key) into the relayer's durable queue, where ``og-settle relayer run`` batches and settles it.

Answers, as OpenGradient's facilitator gives them: ``202 {"settlementJob": {...}}`` when queued (or already queued:
``status: "duplicate"``), ``202 {"settlementJob": null, "notes": ...}`` for ``private`` (nothing goes on chain),
``400 {"error", "reason"}`` for a record intake refuses (the refusal is stored in the queue too), ``401`` without a
valid bearer key when keys are configured (queuing makes the relayer spend gas).
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from og_settle._hex import to_hex

if TYPE_CHECKING:
    from og_settle._deploy import Deployment
    from og_settle.relayer import TeeDirectory

__all__ = ["SETTLE_DATA_PATH", "SettlementDataQueue", "settle_data_handler"]

SETTLE_DATA_PATH: Final = "/settle_data"
_TYPE_HEADER: Final = "x-settlement-type"
_DATA_HEADER: Final = "x-settlement-data"


class SettlementDataQueue:
    """The relayer's queue at ``db`` (an SQLite file or a ``postgresql://`` URL, as ``relayer submit --db`` takes),
    tied to ``deployment`` as ``relayer submit`` ties it, fed with settlement data checked by the relayer's intake.

    ``tee_directory`` is where each leaf's TEE key is looked up (the TEE registry; see
    :class:`og_settle.relayer.RegistryTeeDirectory`). Thread-safe: one writer at a time.
    """

    def __init__(
        self, db: str | os.PathLike[str], deployment: Deployment, *, tee_directory: TeeDirectory | None
    ) -> None:
        from og_settle.relayer import IntakeConfig, bind_deployment, open_store

        self._store = open_store(db)
        try:  # the queue settles to this deployment only (a queue tied to another one is refused)
            bind_deployment(self._store, deployment)
        except BaseException:
            self._store.close()
            raise
        self._config = IntakeConfig(deployment=deployment, tee_directory=tee_directory)
        self._lock = threading.Lock()

    def submit(self, settlement_type: str, data: str | None, *, source: str) -> dict[str, Any] | None:
        """Verify and queue one record; its ``settlementJob`` answer, or None for ``private``.

        Raises ``og_settle.relayer.Rejected`` (stored as a rejected record) when intake refuses it.
        """
        from og_settle.relayer import ItemKind, Rejected, parse_settlement_data

        try:
            item = parse_settlement_data(settlement_type, data, self._config, source=source)
        except Rejected as err:
            raw = json.dumps({_TYPE_HEADER: settlement_type, _DATA_HEADER: data})
            with self._lock:
                self._store.add_rejected(ItemKind.INFERENCE, source, raw, str(err))
            raise
        if item is None:
            return None
        with self._lock:
            (outcome,) = self._store.add_items([item])
        return {
            "jobId": str(outcome.item_id),
            "status": "duplicate" if outcome.duplicate else "queued",
            "settlementType": item.lane.value,
            "key": to_hex(item.key),
        }

    def close(self) -> None:
        with self._lock:
            self._store.close()


def settle_data_handler(
    queue: SettlementDataQueue,
    *,
    authorize: Callable[[Request], None],
    read_body: Callable[[Request], Any],
    in_thread: Callable[..., Any],
    log_fields: Callable[[Request], dict[str, Any]],
) -> Callable[[Request], Any]:
    """The ``POST /settle_data`` handler for the facilitator's app (which supplies its auth, body reader, worker
    threads and request log)."""
    from og_settle.relayer import Rejected

    async def settle_data(request: Request) -> Response:
        authorize(request)
        if request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers:
            await read_body(request)  # OpenGradient sends {}: read and size-check it; the data is in the headers
        settlement_type = request.headers.get(_TYPE_HEADER, "").strip()
        fields = log_fields(request)
        if not settlement_type:
            fields["error"] = f"{_TYPE_HEADER}: missing"
            return JSONResponse({"error": f"Missing {_TYPE_HEADER} header"}, status_code=400)
        data = request.headers.get(_DATA_HEADER)
        client = request.client.host if request.client else "unknown"
        try:
            job = await in_thread(
                functools.partial(queue.submit, settlement_type, data, source=f"settle_data:{client}")
            )
        except Rejected as err:
            fields.update(error=str(err), reason=err.reason)
            return JSONResponse({"error": str(err), "reason": err.reason}, status_code=400)
        fields["settlementType"] = settlement_type
        if job is None:
            return JSONResponse(
                {"settlementJob": None, "notes": "private settlement: nothing about the inference goes on chain"},
                status_code=202,
            )
        fields.update(job=job["jobId"], status_of_job=job["status"])
        return JSONResponse({"settlementJob": job}, status_code=202)

    return settle_data
