"""Typed web3.py clients for og-settle's contracts: SettlementRegistry, PaymentFacilitator, Permit2 reads.

A client's module, and with it web3 (about half a second), is imported on the first use of one of its names (see
``og_settle._lazy``; the ``TYPE_CHECKING`` block below is where each lives); ``import og_settle`` imports neither.
"""

from typing import TYPE_CHECKING

from og_settle._lazy import lazy_exports

if TYPE_CHECKING:
    from og_settle.clients._errors import (
        X402_REASONS,
        ContractRevert,
        NamedError,
        decode_revert,
        error_table,
        x402_reason,
    )
    from og_settle.clients._facilitator import PaymentFacilitatorClient, PaymentOutcome, Permit2Client, SettledPayment
    from og_settle.clients._fees import MIN_FEE_BUMP, FeeBump, tx_fees
    from og_settle.clients._individual_batch import (
        DEFAULT_INDIVIDUAL_ITEM_GAS,
        MAX_INDIVIDUAL_BATCH_ITEMS,
        IndividualBatchItem,
        IndividualOutcome,
        encode_individual_batch,
        individual_batch_gas_limit,
    )
    from og_settle.clients._registry import (
        KEY_TYPES,
        OpenGradientSettlement,
        RecordedBatch,
        RecordedSettlement,
        RegisteredTee,
        RegistryCounters,
        SettlementRegistryClient,
        TeeRegistryClient,
    )
    from og_settle.clients._stock import (
        DEFAULT_ITEM_GAS,
        StockPayment,
        StockPaymentBatcherClient,
        encode_batch,
        exact_proxy_call,
        group_batches,
        proxy_permit_2612,
        stock_reason,
    )
    from og_settle.clients._tx import (
        BroadcastOutcome,
        ContractCall,
        NodeUnavailable,
        Receipt,
        RetryPolicy,
        SignedTx,
        TxSender,
        call_with_retries,
        is_connection_error,
        make_web3,
        revert_data,
    )

__all__ = [
    "DEFAULT_INDIVIDUAL_ITEM_GAS",
    "DEFAULT_ITEM_GAS",
    "KEY_TYPES",
    "MAX_INDIVIDUAL_BATCH_ITEMS",
    "MIN_FEE_BUMP",
    "X402_REASONS",
    "BroadcastOutcome",
    "ContractCall",
    "ContractRevert",
    "FeeBump",
    "IndividualBatchItem",
    "IndividualOutcome",
    "NamedError",
    "NodeUnavailable",
    "OpenGradientSettlement",
    "PaymentFacilitatorClient",
    "PaymentOutcome",
    "Permit2Client",
    "Receipt",
    "RecordedBatch",
    "RecordedSettlement",
    "RegisteredTee",
    "RegistryCounters",
    "RetryPolicy",
    "SettledPayment",
    "SettlementRegistryClient",
    "SignedTx",
    "StockPayment",
    "StockPaymentBatcherClient",
    "TeeRegistryClient",
    "TxSender",
    "call_with_retries",
    "decode_revert",
    "encode_batch",
    "encode_individual_batch",
    "error_table",
    "exact_proxy_call",
    "group_batches",
    "individual_batch_gas_limit",
    "is_connection_error",
    "make_web3",
    "proxy_permit_2612",
    "revert_data",
    "stock_reason",
    "tx_fees",
    "x402_reason",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__, __all__)
