"""Private keys for the command line: read only from environment variables, checked, never echoed."""

from __future__ import annotations

import os
from typing import Any

from og_settle._errors import InvalidInput


def account_from_env(variable: str, *, option: str = "--key-env", holder: str = "the signing account") -> Any:
    """The eth-account ``LocalAccount`` for the secp256k1 private key in ``$variable``.

    The key is ``0x`` + 64 hex digits (the ``0x`` may be left out); surrounding whitespace is ignored.

    Raises:
        InvalidInput: the variable is unset or empty, or does not hold a usable key, as one line naming
            ``option`` and the variable but never the value.
    """
    from eth_account import Account

    value = os.environ.get(variable, "").strip()
    if not value:
        raise InvalidInput(f"{option}: environment variable {variable} is not set (it must hold {holder}'s key)")
    digits = value[2:] if value[:2] in ("0x", "0X") else value
    if len(digits) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        shape = f"{len(digits)} characters" if len(digits) != 64 else "a character that is not a hex digit"
        raise InvalidInput(
            f"{option}: {variable} does not hold a private key (expected 0x + 64 hex digits, found {shape})"
        )
    try:
        return Account.from_key("0x" + digits)
    except (ValueError, TypeError):  # zero, or not below the curve order
        raise InvalidInput(f"{option}: {variable} holds 32 bytes that are not a valid secp256k1 private key") from None
