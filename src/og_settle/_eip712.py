"""EIP-712 domains, in one place: their type strings, separators, digests and eth-account's typed-data form.

Three kinds of domain are signed over here: OpenZeppelin ``EIP712`` contracts (the registries: name, version,
chain id, verifying contract), tokens (EIP-3009 and EIP-2612 sign over the token's own domain, the same four
fields), and Permit2, whose domain has no version.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Final

from eth_abi.abi import encode

from og_settle._errors import InvalidInput
from og_settle._hex import keccak256, parse_address

__all__ = ["DOMAIN_TYPE", "UNVERSIONED_DOMAIN_TYPE", "Eip712Domain", "TokenDomain", "type_fields", "type_name"]

DOMAIN_TYPE: Final = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
UNVERSIONED_DOMAIN_TYPE: Final = "EIP712Domain(string name,uint256 chainId,address verifyingContract)"


def type_fields(type_string: str) -> list[dict[str, str]]:
    """``Name(type a,type b)`` as eth-account's field list ``[{name: a, type: type}, ...]``."""
    inner = type_string[type_string.index("(") + 1 : -1]
    return [{"name": part.split(" ")[1], "type": part.split(" ")[0]} for part in inner.split(",")]


def type_name(type_string: str) -> str:
    return type_string[: type_string.index("(")]


@functools.lru_cache(maxsize=256)
def _separator(name: str, version: str | None, chain_id: int, contract: str) -> bytes:
    if version is None:
        types = ["bytes32", "bytes32", "uint256", "address"]
        values: list[Any] = [keccak256(UNVERSIONED_DOMAIN_TYPE.encode()), keccak256(name.encode()), chain_id, contract]
    else:
        types = ["bytes32", "bytes32", "bytes32", "uint256", "address"]
        values = [keccak256(DOMAIN_TYPE.encode()), keccak256(name.encode()), keccak256(version.encode())]
        values += [chain_id, contract]
    return keccak256(encode(types, values))


@dataclass(frozen=True, slots=True)
class Eip712Domain:
    """An EIP-712 domain: name, version (``None`` for a domain without one, as Permit2's), chain id and verifying
    contract.

    Attributes:
        name: The domain name, for example ``"OG Settlement Registry"``.
        version: The domain version, for example ``"1"``; ``None`` when the domain has no version field.
        chain_id: The chain id (84532 for Base Sepolia).
        verifying_contract: The checksummed address of the contract that verifies the signatures.
    """

    name: str
    version: str | None
    chain_id: int
    verifying_contract: str

    # 0x1901 ‖ separator, computed once: intake hashes one digest per record.
    _prefix: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.chain_id) is not int or self.chain_id <= 0:
            raise InvalidInput(f"chain_id: expected a positive integer, got {self.chain_id!r}")
        contract = parse_address(self.verifying_contract, "verifying_contract")
        object.__setattr__(self, "verifying_contract", contract)
        separator = _separator(self.name, self.version, self.chain_id, contract)
        object.__setattr__(self, "_prefix", b"\x19\x01" + separator)

    def separator(self) -> bytes:
        """The domain separator (what the contract's ``DOMAIN_SEPARATOR()`` / ``eip712Domain`` hashes to)."""
        return self._prefix[2:]

    def digest(self, struct_hash: bytes) -> bytes:
        """``keccak256(0x1901 ‖ separator ‖ structHash)``, what the signer signs."""
        return keccak256(self._prefix + struct_hash)

    def to_json(self) -> dict[str, Any]:
        """The ``domain`` member of typed data."""
        fields: dict[str, Any] = {"name": self.name}
        if self.version is not None:
            fields["version"] = self.version
        return fields | {"chainId": self.chain_id, "verifyingContract": self.verifying_contract}

    def typed_data(
        self, type_string: str, message: dict[str, Any], *, nested: dict[str, list[dict[str, str]]] | None = None
    ) -> dict[str, Any]:
        """The full eth-account / ``eth_signTypedData_v4`` message for the struct ``type_string`` (its referenced
        struct types, if any, in ``nested``)."""
        primary = type_name(type_string)
        domain_type = UNVERSIONED_DOMAIN_TYPE if self.version is None else DOMAIN_TYPE
        types = {"EIP712Domain": type_fields(domain_type), primary: type_fields(type_string), **(nested or {})}
        return {"types": types, "primaryType": primary, "domain": self.to_json(), "message": message}


@dataclass(frozen=True, slots=True)
class TokenDomain(Eip712Domain):
    """A token's own EIP-712 domain, over which EIP-3009 authorisations and EIP-2612 permits are signed:
    ``TokenDomain(name, version, chain_id, token)``, where name and version are the requirements' ``extra.name``
    and ``extra.version`` (``"USDC"``/``"2"`` on Base Sepolia, ``"USD Coin"``/``"2"`` on Base)."""

    @property
    def token(self) -> str:
        """The token's address (the verifying contract)."""
        return self.verifying_contract
