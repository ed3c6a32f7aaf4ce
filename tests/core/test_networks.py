"""The named networks: lookup by name, CAIP-2 id and chain id, and the canonical addresses on each."""

from __future__ import annotations

import dataclasses

import pytest

from og_settle import BASE, BASE_SEPOLIA, NETWORKS, InvalidInput, Network, _addresses, _networks, network


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("base-sepolia", BASE_SEPOLIA),
        ("eip155:84532", BASE_SEPOLIA),
        (84532, BASE_SEPOLIA),
        ("84532", BASE_SEPOLIA),
        ("base", BASE),
        ("eip155:8453", BASE),
        (8453, BASE),
    ],
)
def test_lookup_by_name_caip2_and_chain_id(key: str | int, expected: Network) -> None:
    assert network(key) is expected


@pytest.mark.parametrize("key", ["base-mainnet", "eip155:1", 1, "", "eip155:84532 extra", True])
def test_unknown_network_is_a_one_line_invalid_input(key: str | int) -> None:
    with pytest.raises(InvalidInput, match=r"^network: unknown network .*known: base-sepolia \(eip155:84532\)"):
        network(key)


def test_published_facts() -> None:
    assert (BASE_SEPOLIA.caip2, BASE_SEPOLIA.opg) == ("eip155:84532", "0x240b09731D96979f50B2C649C9CE10FcF9C7987F")
    assert (BASE.caip2, BASE.opg) == ("eip155:8453", "0xFbC2051AE2265686a469421b2C5A2D5462FbF5eB")
    for net in NETWORKS:
        assert net.permit2 == "0x000000000022D473030F116dDEE9F6B43aC78BA3"
        assert net.x402_proxy("exact") == "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"
        assert net.x402_proxy("upto") == "0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002"
        assert net.deterministic_deployer == "0x4e59b44847b379578588920cA78FbF26c0B4956C"
        assert net.opg_decimals == 18
    with pytest.raises(InvalidInput, match="scheme"):
        BASE.x402_proxy("stream")


def test_network_is_frozen_and_names_are_unique() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        BASE.chain_id = 1  # type: ignore[misc]  # the point of the test
    assert len({n.name for n in NETWORKS}) == len({n.chain_id for n in NETWORKS}) == len(NETWORKS)


def test_legacy_addresses_module_is_an_alias_of_the_one_home() -> None:
    for name in _addresses.__all__:
        assert getattr(_addresses, name) is getattr(_networks, name)
