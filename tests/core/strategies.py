"""Hypothesis strategies for Merkle leaves: OpenGradient batches and values of general ABI leaf encodings."""

from __future__ import annotations

from typing import Any

from eth_abi.tools import get_abi_strategy
from hypothesis import strategies as st

from og_settle import OG_LEAF_ENCODING

og_values = st.tuples(
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
    st.binary(max_size=300),
    st.integers(min_value=0, max_value=2**256 - 1),
)

og_batches = st.lists(og_values, min_size=1, max_size=40)

# ABI types that @openzeppelin/merkle-tree (through @metamask/abi-utils) and eth_abi both encode.
GENERAL_TYPES = (
    "address",
    "bool",
    "uint8",
    "uint96",
    "uint256",
    "int16",
    "int256",
    "bytes1",
    "bytes20",
    "bytes32",
    "bytes",
    "string",
    "uint16[]",
    "bytes32[2]",
    "(address,uint96)",
    "(bool,bytes)[]",
)

# eth_abi's string strategy includes lone surrogates, which are not Unicode text and cannot be UTF-8 encoded.
_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)


def value_strategy(abi_type: str) -> st.SearchStrategy[Any]:
    return _text if abi_type == "string" else get_abi_strategy(abi_type)


encodings = st.lists(st.sampled_from(GENERAL_TYPES), min_size=1, max_size=4).map(tuple)


@st.composite
def general_batches(draw: st.DrawFn) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    encoding = draw(encodings)
    value = st.tuples(*(value_strategy(t) for t in encoding))
    return encoding, draw(st.lists(value, min_size=1, max_size=12))


@st.composite
def batches(draw: st.DrawFn) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """Mostly OpenGradient batches, sometimes a general encoding."""
    if draw(st.integers(0, 3)) == 0:
        return draw(general_batches())
    return OG_LEAF_ENCODING, draw(og_batches)
