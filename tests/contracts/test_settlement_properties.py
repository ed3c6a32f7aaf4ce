"""Property tests: random OpenGradient batches built in Python (og_settle._merkle) against the on-chain registry."""

from __future__ import annotations

from typing import Any

import ape
from hypothesis import given
from hypothesis import strategies as st

from og_settle._hex import keccak256
from og_settle._merkle import OG_LEAF_ENCODING, StandardMerkleTree
from tests.contracts.conftest import Deployment, isolated

DA_POINTER = b"blob:0x01"
bytes32 = st.binary(min_size=32, max_size=32)
# [teeId, inputHash, outputHash, teeSignature, timestamp]; signatures of any length (RSA-PSS is 256 bytes).
raw_leaf = st.tuples(bytes32, bytes32, bytes32, st.binary(max_size=300), st.integers(0, 2**256 - 1))


@st.composite
def batches(draw: Any, d: Deployment, min_size: int = 1, max_size: int = 16) -> list[tuple[Any, ...]]:
    """A batch mixing arbitrary leaves and leaves genuinely signed by the registered TEE."""
    leaves = draw(st.lists(raw_leaf, min_size=min_size, max_size=max_size, unique=True))
    signed = draw(st.lists(st.booleans(), min_size=len(leaves), max_size=len(leaves)))
    out = []
    for (_, input_hash, output_hash, sig, ts), is_signed in zip(leaves, signed, strict=True):
        if is_signed:
            ts = ts % 2**64
            sig = d.leaf_signature(d.tee, d.tee.tee_id, input_hash, output_hash, ts)
            out.append((d.tee.tee_id, input_hash, output_hash, sig, ts))
        else:
            out.append((_, input_hash, output_hash, sig, ts))
    return out


def flip(data: bytes, bit: int) -> bytes:
    bit %= 8 * len(data)
    return data[: bit // 8] + bytes([data[bit // 8] ^ (1 << (bit % 8))]) + data[bit // 8 + 1 :]


def record(d: Deployment, tree: StandardMerkleTree) -> None:
    d.settlement.recordBatch(tree.root, len(tree), DA_POINTER, sender=d.relayer)


@given(data=st.data())
def test_every_valid_proof_verifies(deployment: Deployment, chain: Any, data: st.DataObject) -> None:
    """Every proof and multiproof of a recorded batch verifies on chain; signed leaves pass the signature view."""
    d = deployment
    tree = StandardMerkleTree.of(data.draw(batches(d)), OG_LEAF_ENCODING)
    with isolated(chain):
        record(d, tree)
        batch_id = d.settlement.getBatch(tree.root).batchId
        signature_checks = 2  # the combined view is slower; two signed leaves per batch are enough
        for i, value in enumerate(tree.values):
            proof = tree.proof(i)
            assert d.settlement.verifyInclusion(tree.root, value, proof)
            if value[0] == d.tee.tee_id and signature_checks:
                signature_checks -= 1
                assert tuple(d.settlement.verifyInferenceSignature(tree.root, value, proof)) == (
                    batch_id,
                    d.tee.address,
                )
        indices = data.draw(st.lists(st.integers(0, len(tree) - 1), min_size=1, unique=True))
        multi = tree.multiproof(indices)
        assert d.settlement.verifyMultiInclusion(tree.root, multi.leaves, multi.proof, multi.proof_flags)


@given(data=st.data())
def test_any_flipped_bit_is_rejected(deployment: Deployment, chain: Any, data: st.DataObject) -> None:
    """Flipping any one bit of a leaf field, a proof node or the root makes the proof fail."""
    d = deployment
    tree = StandardMerkleTree.of(data.draw(batches(d, min_size=2)), OG_LEAF_ENCODING)
    i = data.draw(st.integers(0, len(tree) - 1), label="index")
    value, proof = list(tree.values[i]), list(tree.proof(i))
    root = tree.root
    target = data.draw(
        st.sampled_from(["teeId", "inputHash", "outputHash", "teeSignature", "timestamp", "proof", "root"])
    )
    bit = data.draw(st.integers(0, 2**16), label="bit")
    if target == "timestamp":
        value[4] ^= 1 << (bit % 256)
    elif target == "teeSignature":
        value[3] = flip(value[3], bit) if value[3] else b"\x01"  # an empty signature "flips" to one byte
    elif target == "proof":
        k = data.draw(st.integers(0, len(proof) - 1), label="proof node")
        proof[k] = flip(proof[k], bit)
    elif target == "root":
        root = flip(root, bit)
    else:
        field = ["teeId", "inputHash", "outputHash"].index(target)
        value[field] = flip(value[field], bit)
    with isolated(chain):
        record(d, tree)
        assert not d.settlement.verifyInclusion(root, tuple(value), proof)
        if target == "root":
            with ape.reverts(d.settlement.UnknownBatchRoot, root=root):
                d.settlement.verifyInferenceSignature(root, tuple(value), proof)
        else:
            with ape.reverts(d.settlement.InvalidInclusionProof, root=root):
                d.settlement.verifyInferenceSignature(root, tuple(value), proof)
        multi = tree.multiproof([i])
        leaves = [tuple(value)] if target not in ("proof", "root") else list(multi.leaves)
        mproof = list(multi.proof)
        if target == "proof" and mproof:
            mproof[0] = flip(mproof[0], bit)
        elif target == "proof":
            return  # a one-leaf multiproof of a one-level path has nothing more to flip
        assert not d.settlement.verifyMultiInclusion(root, leaves, mproof, multi.proof_flags)


def _node_path(tree_nodes: list[bytes], index: int) -> list[bytes]:
    """Sibling hashes from flat-array node ``index`` up to the root (OpenZeppelin's tree layout)."""
    path = []
    while index > 0:
        path.append(tree_nodes[index - 1 if index % 2 == 0 else index + 1])
        index = (index - 1) // 2
    return path


def _raw_process(node: bytes, path: list[bytes]) -> bytes:
    for sibling in path:
        node = keccak256(node + sibling if node < sibling else sibling + node)
    return node


@given(data=st.data())
def test_internal_node_forgery_is_rejected(deployment: Deployment, chain: Any, data: st.DataObject) -> None:
    """A 64-byte internal node (its two children) presented as a leaf never verifies: leaves are double-hashed."""
    d = deployment
    tree = StandardMerkleTree.of(data.draw(batches(d, min_size=3)), OG_LEAF_ENCODING)
    nodes = [bytes.fromhex(h[2:]) for h in tree.dump()["tree"]]
    internal = data.draw(st.integers(1, len(nodes) // 2 - 1) if len(nodes) // 2 > 1 else st.just(0), label="node")
    a, b = sorted((nodes[2 * internal + 1], nodes[2 * internal + 2]))
    path = _node_path(nodes, internal)
    # The forgery would work against a verifier that took the 64 bytes as a single-hashed leaf ...
    assert _raw_process(keccak256(a + b), path) == tree.root
    # ... but the registry builds every leaf from a typed record and double-hashes it.
    forgeries = [
        (a, b, b"\x00" * 32, b"", 0),
        (a, b, keccak256(b""), b"", 0),
        (b"\x00" * 32, b"\x00" * 32, b"\x00" * 32, a + b, 0),
        (a, b, a, b, int.from_bytes(b, "big")),
    ]
    with isolated(chain):
        record(d, tree)
        for forged in forgeries:
            assert d.settlement.leafHash(forged) != nodes[internal]
            assert not d.settlement.verifyInclusion(tree.root, forged, path)
            assert not d.settlement.verifyMultiInclusion(tree.root, [forged], path, [False] * len(path))


@given(data=st.data())
def test_proof_against_unrecorded_root_is_rejected(deployment: Deployment, chain: Any, data: st.DataObject) -> None:
    """A valid proof against a root that was never recorded is rejected, even when other roots are recorded."""
    d = deployment
    tree = StandardMerkleTree.of(data.draw(batches(d)), OG_LEAF_ENCODING)
    other = StandardMerkleTree.of(data.draw(batches(d)), OG_LEAF_ENCODING)
    i = data.draw(st.integers(0, len(tree) - 1), label="index")
    with isolated(chain):
        if other.root != tree.root:
            record(d, other)
        assert not d.settlement.verifyInclusion(tree.root, tree.values[i], tree.proof(i))
        multi = tree.multiproof([i])
        assert not d.settlement.verifyMultiInclusion(tree.root, multi.leaves, multi.proof, multi.proof_flags)
        with ape.reverts(d.settlement.UnknownBatchRoot, root=tree.root):
            d.settlement.verifyInferenceSignature(tree.root, tree.values[i], tree.proof(i))
