"""Stateful test: registrations, revocations, disables, settlements and replays in random order against a model."""

from __future__ import annotations

from typing import Any

import ape
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from og_settle._attestation import TeeKey
from og_settle._hex import keccak256
from tests.contracts.conftest import MEASUREMENT, TDX, Deployment

OTHER_MEASUREMENT = keccak256(b"stateful: second measurement")
MEASUREMENTS = [MEASUREMENT, OTHER_MEASUREMENT]
NONE, APPROVED, REVOKED = 0, 1, 2


def test_registry_state_machine(deployment: Deployment, chain: Any, payers: list[Any]) -> None:
    """No digest or root is recorded twice; no disabled, revoked or unknown TEE settles; counters, events and
    stored state agree."""
    d = deployment
    keys = [d.tee] + [TeeKey(keccak256(b"stateful key %d" % i)) for i in range(3)]

    class Machine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.snapshot = chain.snapshot()
            self.status = {MEASUREMENT: APPROVED, OTHER_MEASUREMENT: NONE}
            self.tees: dict[bytes, dict[str, Any]] = {d.tee.tee_id: {"measurement": MEASUREMENT, "enabled": True}}
            self.roots: dict[bytes, int] = {}  # root -> size
            self.digests: dict[bytes, int] = {}  # digest -> kind
            self.settled: list[tuple[str, Any, bytes]] = []  # for replays
            self.events: list[tuple[str, bytes, bytes]] = []  # (event, key, teeId or b"")
            self.counter = 0

        def active(self, key: TeeKey) -> bool:
            tee = self.tees.get(key.tee_id)
            return tee is not None and tee["enabled"] and self.status[tee["measurement"]] == APPROVED

        def now(self) -> int:
            return int(chain.blocks.head.timestamp)

        @rule(m=st.sampled_from(MEASUREMENTS))
        def approve(self, m: bytes) -> None:
            if self.status[m] == APPROVED:
                with ape.reverts(d.registry.MeasurementAlreadyApproved, measurement=m):
                    d.registry.approveMeasurement(m, TDX, "v", sender=d.admin)
            elif self.status[m] == REVOKED:
                with ape.reverts(d.registry.MeasurementWasRevoked, measurement=m):
                    d.registry.approveMeasurement(m, TDX, "v", sender=d.admin)
            else:
                d.registry.approveMeasurement(m, TDX, "v", sender=d.admin)
                self.status[m] = APPROVED

        @rule(m=st.sampled_from(MEASUREMENTS))
        def revoke(self, m: bytes) -> None:
            if self.status[m] != APPROVED:
                with ape.reverts(d.registry.MeasurementNotApproved, measurement=m, status=self.status[m]):
                    d.registry.revokeMeasurement(m, sender=d.admin)
            else:
                d.registry.revokeMeasurement(m, sender=d.admin)
                self.status[m] = REVOKED

        @rule(k=st.integers(0, len(keys) - 1), m=st.sampled_from(MEASUREMENTS))
        def register(self, k: int, m: bytes) -> None:
            key = keys[k]
            if self.status[m] != APPROVED:
                with ape.reverts(d.registry.MeasurementNotApproved, measurement=m, status=self.status[m]):
                    d.register(key, measurement=m)
            elif key.tee_id in self.tees:
                with ape.reverts(d.registry.TeeAlreadyRegistered, teeId=key.tee_id):
                    d.register(key, measurement=m)
            else:
                d.register(key, measurement=m)
                self.tees[key.tee_id] = {"measurement": m, "enabled": True}

        @rule(k=st.integers(0, len(keys) - 1), enable=st.booleans())
        def toggle(self, k: int, enable: bool) -> None:
            key = keys[k]
            call = d.registry.enableTee if enable else d.registry.disableTee
            tee = self.tees.get(key.tee_id)
            if tee is None:
                with ape.reverts(d.registry.TeeNotRegistered, teeId=key.tee_id):
                    call(key.tee_id, sender=d.operator)
            elif tee["enabled"] == enable:
                error = d.registry.TeeAlreadyEnabled if enable else d.registry.TeeAlreadyDisabled
                with ape.reverts(error, teeId=key.tee_id):
                    call(key.tee_id, sender=d.operator)
            elif enable and self.status[tee["measurement"]] != APPROVED:
                with ape.reverts(d.registry.MeasurementNotApproved, measurement=tee["measurement"]):
                    call(key.tee_id, sender=d.operator)
            else:
                call(key.tee_id, sender=d.operator)
                tee["enabled"] = enable

        def _settle(self, kind: str, key: TeeKey, payload: Any, signature: bytes) -> None:
            method = d.settlement.settleIndividual if kind == "individual" else d.settlement.settleMetadata
            digest = d.domain.digest(payload.struct_hash())
            if digest in self.digests:
                with ape.reverts(d.settlement.SettlementAlreadyRecorded, digest=digest):
                    method(payload.as_abi(), signature, sender=d.relayer)
            elif not self.active(key):
                with ape.reverts(d.settlement.TeeNotActive, teeId=key.tee_id):
                    method(payload.as_abi(), signature, sender=d.relayer)
            else:
                receipt = method(payload.as_abi(), signature, sender=d.relayer)
                self.digests[digest] = 1 if kind == "individual" else 2
                self.settled.append((kind, payload, signature))
                self.events += [(log.event_name, log.digest, log.teeId) for log in receipt.events]

        @rule(k=st.integers(0, len(keys) - 1), payer=st.sampled_from(range(5)), metadata=st.booleans())
        def settle(self, k: int, payer: int, metadata: bool) -> None:
            self.counter += 1
            seed = b"%d" % self.counter
            kind = "metadata" if metadata else "individual"
            make = d.metadata if metadata else d.individual
            kwargs = {"size": 64} if metadata else {}
            payload, signature = make(
                key=keys[k], timestamp=self.now(), payer=payers[payer].address, seed=seed, **kwargs
            )
            self._settle(kind, keys[k], payload, signature)

        @rule(data=st.data())
        def replay(self, data: st.DataObject) -> None:
            if not self.settled:
                return
            kind, payload, signature = data.draw(st.sampled_from(self.settled))
            key = next(k for k in keys if k.tee_id == payload.tee_id)
            self._settle(kind, key, payload, signature)

        @rule(seed=st.integers(0, 6), size=st.integers(1, 10_000))
        def record_batch(self, seed: int, size: int) -> None:
            root = keccak256(b"stateful root %d" % seed)
            if root in self.roots:
                with ape.reverts(d.settlement.BatchRootAlreadyRecorded, root=root):
                    d.settlement.recordBatch(root, size, b"da", sender=d.relayer)
            else:
                receipt = d.settlement.recordBatch(root, size, b"da", sender=d.relayer)
                self.roots[root] = size
                self.events += [(log.event_name, log.root, log.batchId.to_bytes(32, "big")) for log in receipt.events]

        @invariant()
        def counters_match_the_model(self) -> None:
            assert tuple(d.settlement.counters()) == (len(self.roots), sum(self.roots.values()))

        @invariant()
        def events_are_unique_and_match_the_model(self) -> None:
            settled = [digest for name, digest, _ in self.events if name != "BatchRecorded"]
            batches = [root for name, root, _ in self.events if name == "BatchRecorded"]
            assert len(settled) == len(set(settled)) == len(self.digests)
            assert len(batches) == len(set(batches)) == len(self.roots)
            batch_ids = [int.from_bytes(i, "big") for name, _, i in self.events if name == "BatchRecorded"]
            assert batch_ids == list(range(1, len(batch_ids) + 1))

        def teardown(self) -> None:
            try:
                # Stored state agrees with the model and the events, checked once per run.
                for root, size in self.roots.items():
                    assert d.settlement.getBatch(root).size == size
                for digest, kind in self.digests.items():
                    assert d.settlement.getSettlement(digest).kind == kind
                assert not d.settlement.isSettled(keccak256(b"never settled"))
                for key in keys:
                    assert d.registry.isActive(key.tee_id) == self.active(key)
            finally:
                chain.restore(self.snapshot)

    run_state_machine_as_test(
        Machine,
        settings=settings(max_examples=min(settings.default.max_examples, 10), stateful_step_count=15, deadline=None),
    )
