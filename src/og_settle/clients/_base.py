"""What every typed contract client shares: ABI loading, eth_calls with retries and named reverts, call encoding."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from og_settle._hex import parse_address
from og_settle.clients._errors import ContractRevert, NamedError, decode_revert, error_table
from og_settle.clients._tx import ContractCall, RetryPolicy, call_with_retries, revert_data


class ContractClient:
    """One deployed contract. Subclasses name the contract (``CONTRACT``); its committed ABI is the default."""

    CONTRACT: ClassVar[str]

    def __init__(
        self,
        w3: Any,
        address: str,
        *,
        abi: Sequence[Mapping[str, Any]] | None = None,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[str, int, float, BaseException], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        if abi is None:
            from og_settle._artifacts import abi as load_abi

            abi = load_abi(self.CONTRACT)
        self.w3 = w3
        self.address = parse_address(address, self.CONTRACT)
        self.abi = list(abi)
        self.contract = w3.eth.contract(address=self.address, abi=self.abi)
        self.errors = error_table([self.abi])
        self.retry = retry or RetryPolicy()
        self._on_retry = on_retry
        self._should_stop = should_stop

    def _retrying(self, fn: Callable[[], Any], what: str) -> Any:
        return call_with_retries(fn, self.retry, what=what, on_retry=self._on_retry, should_stop=self._should_stop)

    def _read(self, name: str, *args: Any) -> Any:
        """``eth_call`` of ``name``; retried on connection errors; a revert becomes a named ContractRevert."""
        fn = getattr(self.contract.functions, name)(*args)

        def call() -> Any:
            try:
                return fn.call()
            except Exception as err:
                data = revert_data(err)
                if data is None:
                    raise
                raise ContractRevert(decode_revert(data, self.errors), context=name) from err

        return self._retrying(call, f"{self.CONTRACT}.{name}")

    def _call(self, name: str, args: Sequence[Any], description: str) -> ContractCall:
        data = self.contract.encode_abi(name, args=list(args))
        return ContractCall(to=self.address, data=bytes.fromhex(data.removeprefix("0x")), description=description)

    def indexed_failures(self, receipt: Any, event_name: str) -> dict[int, bytes]:
        """``index -> reason`` of this contract's per-item failure events (``event_name(uint256 indexed index, ...,
        bytes reason)``) in ``receipt``'s logs; logs of other contracts and events are skipped."""
        event = getattr(self.contract.events, event_name)()
        failed: dict[int, bytes] = {}
        for log in receipt.logs:
            if str(log["address"]).lower() != self.address.lower():
                continue
            try:
                decoded = event.process_log(log)
            except Exception:
                continue
            failed[int(decoded["args"]["index"])] = bytes(decoded["args"]["reason"])
        return failed

    def decode_error(self, data: bytes) -> NamedError:
        return decode_revert(data, self.errors)
