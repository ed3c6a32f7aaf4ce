"""Cross-implementation vectors: og_settle's StandardMerkleTree against @openzeppelin/merkle-tree under Node.

The same values must give the same root, the same getProof(i) for every i, the same getMultiProof for random
subsets, and byte-identical JSON.stringify(dump()) text; each library must load the other's dump.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from og_settle import OG_LEAF_ENCODING, StandardMerkleTree
from og_settle import _merkle_hash as hashing
from tests.core.conftest import OzWorker
from tests.core.strategies import batches, og_batches

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module", params=["native", "python"], autouse=True)
def hashing_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every cross-check twice: with the C hashing (og_settle._batch_native) and with the Python fallback."""
    saved = hashing._native
    if request.param == "python":
        hashing._native = None
    yield str(request.param)
    hashing._native = saved


def hexes(nodes: tuple[bytes, ...] | list[bytes]) -> list[str]:
    return ["0x" + node.hex() for node in nodes]


def assert_same_as_openzeppelin(tree: StandardMerkleTree, answer: dict[str, Any], subsets: list[list[int]]) -> None:
    assert answer["root"] == "0x" + tree.root.hex()
    assert answer["dump"] == tree.dump_json()
    assert answer["proofs"] == [hexes(proof) for proof in tree.proofs()]
    values_json = [entry["value"] for entry in tree.dump()["values"]]
    for subset, theirs in zip(subsets, answer["multiproofs"], strict=True):
        ours = tree.multiproof(subset)
        assert theirs["proof"] == hexes(ours.proof)
        assert theirs["proofFlags"] == list(ours.proof_flags)
        order = sorted(subset, key=tree.tree_index, reverse=True)
        assert theirs["leaves"] == [values_json[i] for i in order]


@given(batch=batches(), sort_leaves=st.booleans(), data=st.data())
def test_same_tree_proofs_multiproofs_and_dump(
    oz: OzWorker, batch: tuple[tuple[str, ...], list[Any]], sort_leaves: bool, data: st.DataObject
) -> None:
    """For any values, og_settle and OpenZeppelin agree on root, every proof, multiproofs and the dump text."""
    encoding, values = batch
    tree = StandardMerkleTree.of(values, encoding, sort_leaves=sort_leaves)
    indices = st.lists(st.integers(0, len(values) - 1), unique=True, max_size=len(values))
    subsets = [data.draw(indices), list(range(len(values))), []]
    values_json = [entry["value"] for entry in tree.dump()["values"]]
    request = {"op": "of", "encoding": list(encoding), "values": values_json, "sortLeaves": sort_leaves}
    answer = oz.ask({**request, "multiproofs": subsets})
    assert_same_as_openzeppelin(tree, answer, subsets)


@given(batch=batches(), sort_leaves=st.booleans())
def test_each_loads_the_others_dump(oz: OzWorker, batch: tuple[tuple[str, ...], list[Any]], sort_leaves: bool) -> None:
    """OpenZeppelin loads our dump and reproduces it; we load OpenZeppelin's dump and reproduce it byte for byte."""
    encoding, values = batch
    ours = StandardMerkleTree.of(values, encoding, sort_leaves=sort_leaves)
    loaded_by_them = oz.ask({"op": "load", "dump": ours.dump_json(), "multiproofs": []})
    assert_same_as_openzeppelin(ours, loaded_by_them, [])
    values_json = [entry["value"] for entry in ours.dump()["values"]]
    theirs = oz.ask({"op": "of", "encoding": list(encoding), "values": values_json, "sortLeaves": sort_leaves})
    loaded_by_us = StandardMerkleTree.load_json(theirs["dump"])
    assert loaded_by_us.dump_json() == theirs["dump"]
    assert [hexes(proof) for proof in loaded_by_us.proofs()] == theirs["proofs"]


@given(batch=og_batches, data=st.data())
def test_openzeppelin_verifies_our_proofs(oz: OzWorker, batch: list[Any], data: st.DataObject) -> None:
    """StandardMerkleTree.verify and verifyMultiProof in Node accept our proofs."""
    tree = StandardMerkleTree.of(batch)
    index = data.draw(st.integers(0, len(batch) - 1))
    value = tree.dump()["values"][index]["value"]
    root = "0x" + tree.root.hex()
    request = {"op": "verify", "root": root, "encoding": list(OG_LEAF_ENCODING), "value": value}
    assert oz.ask({**request, "proof": hexes(tree.proof(index))})["ok"] is True
    subset = data.draw(st.lists(st.integers(0, len(batch) - 1), unique=True))
    multiproof = tree.multiproof(subset)
    leaves = [StandardMerkleTree.of([leaf]).dump()["values"][0]["value"] for leaf in multiproof.leaves]
    proof = {"leaves": leaves, "proof": hexes(multiproof.proof), "proofFlags": list(multiproof.proof_flags)}
    answer = oz.ask({"op": "verifyMulti", "root": root, "encoding": list(OG_LEAF_ENCODING), "multiproof": proof})
    assert answer["ok"] is True


def test_duplicate_values_are_placed_like_openzeppelin(oz: OzWorker) -> None:
    leaf = (b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"sig", 7)
    other = (b"\x04" * 32, b"\x05" * 32, b"\x06" * 32, b"", 0)
    values = [leaf, other, leaf, leaf, other]
    tree = StandardMerkleTree.of(values)
    values_json = [entry["value"] for entry in tree.dump()["values"]]
    answer = oz.ask({"op": "of", "encoding": list(OG_LEAF_ENCODING), "values": values_json, "multiproofs": [[0, 2]]})
    assert_same_as_openzeppelin(tree, answer, [[0, 2]])


def golden(name: str) -> tuple[str, dict[str, Any]]:
    text = (DATA / f"{name}.golden.json").read_text()
    expected = json.loads((DATA / f"{name}.golden.expected.json").read_text())
    return text, expected


def check_golden(name: str, sort_leaves: bool) -> None:
    text, expected = golden(name)
    loaded = StandardMerkleTree.load_json(text)
    assert loaded.dump_json() == text
    data = json.loads(text)
    rebuilt = StandardMerkleTree.of([v["value"] for v in data["values"]], data["leafEncoding"], sort_leaves=sort_leaves)
    for tree in (loaded, rebuilt):
        assert tree.dump_json() == text
        assert "0x" + tree.root.hex() == expected["root"]
        assert [hexes(proof) for proof in tree.proofs()] == expected["proofs"]
        multiproof = tree.multiproof(expected["multiproof"]["indices"])
        assert hexes(multiproof.proof) == expected["multiproof"]["proof"]
        assert list(multiproof.proof_flags) == expected["multiproof"]["proofFlags"]


def test_golden_opengradient_batch() -> None:
    """A batch dumped by @openzeppelin/merkle-tree 1.0.8 (tests/data/make_golden.js), incl. empty and long
    signatures and timestamps 0 and 2**256 - 1."""
    check_golden("og_batch", sort_leaves=True)


def test_golden_unsorted_batch() -> None:
    check_golden("og_batch_unsorted", sort_leaves=False)


def test_golden_address_uint_tree() -> None:
    """The airdrop-style [address, uint256] tree of OpenZeppelin's README."""
    check_golden("address_uint", sort_leaves=True)


def test_we_load_other_spellings_openzeppelin_accepts(oz: OzWorker) -> None:
    """Hex integers, lowercase addresses and upper-case hex in a Node dump load to the same tree."""
    values = [
        ["0xabcdefabcdefabcdefabcdefabcdefabcdefabcd", "0x1f", "0xDEADBEEF"],
        ["0x00000000000000000000000000000000000000ff", "12", "0x"],
    ]
    answer = oz.ask({"op": "of", "encoding": ["address", "uint256", "bytes"], "values": values})
    tree = StandardMerkleTree.load_json(answer["dump"])
    assert "0x" + tree.root.hex() == answer["root"]
    assert [hexes(proof) for proof in tree.proofs()] == answer["proofs"]
    assert tree.values[0] == ("0xABcdEFABcdEFabcdEfAbCdefabcdeFABcDEFabCD", 31, b"\xde\xad\xbe\xef")
    assert json.loads(tree.dump_json())["tree"] == json.loads(answer["dump"])["tree"]
