"""Stateful property test: random batches of good and bad payments against the genuine Permit2 and OPG."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from og_settle._permit2 import Permit2Authorization, sign_authorization
from tests.support.payments import settled_events

ONE = 10**18
FAULTS = ("none", "none", "none", "reuse", "expired", "early", "wrong_signer", "too_much", "foreign_upto")

item_strategy = st.tuples(
    st.integers(0, 4),  # payer
    st.integers(1, 50 * ONE),  # amount
    st.booleans(),  # upto?
    st.sampled_from(FAULTS),
    st.integers(0, 2**256 - 1),  # nonce
)


class PaymentMachine(RuleBasedStateMachine):
    """Batches of mixed payments; a Python model predicts which items settle."""

    env: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self._isolation = self.env["chain"].isolate()
        self._isolation.__enter__()
        env = self.env
        self.people = [*env["payers"], env["payee"]]
        self.initial_total = sum(env["opg"].balanceOf(p) for p in self.people)
        self.balances = {p.address: env["opg"].balanceOf(p) for p in env["payers"]}
        self.spent: set[tuple[str, int]] = set()
        self.settled_nonces: list[tuple[str, int]] = []
        self.now = int(env["chain"].pending_timestamp)

    def teardown(self) -> None:
        self._isolation.__exit__(None, None, None)

    def _sign(self, payer: Any, amount: int, upto: bool, fault: str, nonce: int) -> tuple[Permit2Authorization, Any]:
        env = self.env
        facilitator_eoa = env["stranger"] if fault == "foreign_upto" else env["relayer"]
        if fault == "reuse" and self.spent:
            owner, nonce = sorted(self.spent)[nonce % len(self.spent)]
            payer = next(p for p in env["payers"] if p.address == owner)
        authorization = Permit2Authorization(
            owner=payer.address,
            token=env["opg"].address,
            amount=amount + (ONE if upto else 0),
            spender=env["facilitator"].address,
            nonce=nonce,
            deadline=self.now - 1 if fault == "expired" else self.now + 3600,
            to=env["payee"].address,
            valid_after=self.now + 3600 if fault == "early" else self.now - 600,
            facilitator=facilitator_eoa.address if (upto or fault == "foreign_upto") else None,
        )
        key = env["payers"][(env["payers"].index(payer) + 1) % 5].private_key if fault == "wrong_signer" else None
        signature = sign_authorization(authorization, key or payer.private_key, env["chain_id"])
        settle_amount = amount if authorization.scheme.is_upto else authorization.amount
        if fault == "too_much":
            settle_amount = authorization.amount  # with the payer's whole balance added below
        return authorization, (signature, settle_amount)

    @rule(items=st.lists(item_strategy, min_size=1, max_size=6))
    def settle_batch(self, items: list[tuple[int, int, bool, str, int]]) -> None:
        env = self.env
        payments, predictions, amounts = [], [], []
        seen: set[tuple[str, int]] = set()
        for payer_index, amount, upto, fault, nonce in items:
            payer = env["payers"][payer_index]
            if fault == "reuse" and not self.spent:
                fault = "none"
            if fault == "too_much":
                amount = self.balances[payer.address] + 1
            authorization, (signature, settle_amount) = self._sign(payer, amount, upto, fault, nonce)
            key = (authorization.owner, authorization.nonce)
            ok = fault in ("none", "too_much") and key not in self.spent and key not in seen
            ok = ok and settle_amount <= self.balances[authorization.owner]
            if ok:
                seen.add(key)
                self.balances[authorization.owner] -= settle_amount
            payments.append(authorization.payment_args(signature, amount=settle_amount))
            predictions.append(ok)
            amounts.append((key, settle_amount))
        payee_before = env["opg"].balanceOf(env["payee"])
        tx = env["facilitator"].settleBatch(payments, sender=env["relayer"])
        results = [bool(r.settled) for r in tx.return_value]
        assert results == predictions
        settled = settled_events(env["facilitator"], tx)
        failed_events = list(tx.decode_logs(env["facilitator"].PaymentFailed))
        assert [(e.payer, e.nonce, e.amount) for e in settled] == [
            (key[0], key[1], amount) for (key, amount), ok in zip(amounts, results, strict=True) if ok
        ]
        assert [e.index for e in failed_events] == [i for i, ok in enumerate(results) if not ok]
        for (key, _), ok in zip(amounts, results, strict=True):
            if ok:
                self.spent.add(key)
                self.settled_nonces.append(key)
        paid = sum(amount for (_, amount), ok in zip(amounts, results, strict=True) if ok)
        assert env["opg"].balanceOf(env["payee"]) - payee_before == paid

    @invariant()
    def tokens_are_conserved(self) -> None:
        """OPG only moves between payers and the payee: their total never changes."""
        assert sum(self.env["opg"].balanceOf(p) for p in self.people) == self.initial_total

    @invariant()
    def facilitator_holds_nothing(self) -> None:
        """The facilitator's OPG balance is always zero."""
        assert self.env["opg"].balanceOf(self.env["facilitator"]) == 0

    @invariant()
    def each_nonce_pays_once(self) -> None:
        """No (payer, nonce) has settled twice, and every settled one is spent in Permit2's bitmap."""
        assert len(self.settled_nonces) == len(set(self.settled_nonces))
        for owner, nonce in self.settled_nonces[-6:]:
            assert (self.env["permit2"].nonceBitmap(owner, nonce >> 8) >> (nonce & 0xFF)) & 1 == 1

    @invariant()
    def payer_balances_match_the_model(self) -> None:
        """Each payer's balance equals its start minus what the model says settled."""
        for address, expected in self.balances.items():
            assert self.env["opg"].balanceOf(address) == expected


def test_random_batches_keep_the_invariants(
    facilitator: Any,
    opg: Any,
    permit2: Any,
    payers: list[Any],
    payee: Any,
    relayer: Any,
    stranger: Any,
    chain: Any,
    chain_id: int,
    permit2_approved: None,
) -> None:
    """Random payers, amounts, nonces and batches with mixed good and bad items keep every invariant."""
    PaymentMachine.env = {
        "facilitator": facilitator,
        "opg": opg,
        "permit2": permit2,
        "payers": payers,
        "payee": payee,
        "relayer": relayer,
        "stranger": stranger,
        "chain": chain,
        "chain_id": chain_id,
    }
    # Each step settles a batch on chain (~0.4 s); 25 runs of 5 steps keep CI near a minute.
    run_state_machine_as_test(
        PaymentMachine,
        settings=settings(settings.default, max_examples=min(settings.default.max_examples, 25), stateful_step_count=5),
    )


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
