"""The streamed batch files (``_merkle_stream``, ``_merkle_dump``) agree with the in-memory StandardMerkleTree.

Dumps in the compact layout are read in blocks; these tests make the blocks tiny so that entries and lines
straddle block boundaries, and compare every answer with the whole-file reading.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from og_settle import OG_LEAF_ENCODING, InferenceLeaf, InvalidInput, StandardMerkleTree
from og_settle import _merkle_dump as dumps
from og_settle import _merkle_hash as hashing
from og_settle import _merkle_stream as stream
from tests.core.strategies import batches, og_batches

SLOW_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "_BLOCK", 700)
    monkeypatch.setattr(stream, "_WRITE_BLOCK", 5)
    monkeypatch.setattr(dumps, "_BLOCK", 700)
    monkeypatch.setattr(dumps, "_NODES_PER_READ", 3)


@pytest.fixture(params=["native", "python"])
def leaf_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Build through the C extension, and again without it (the pure-Python path must give the same)."""
    if request.param == "python":
        monkeypatch.setattr(stream, "_native", None)
        monkeypatch.setattr(hashing, "_native", None)
    return str(request.param)


def test_the_c_extension_is_built() -> None:
    """`pip install` (make setup) builds og_settle._batch_native; without it the batch tools are slower."""
    assert stream._native is not None


def write_dump(folder: Path, tree: StandardMerkleTree, name: str = "dump.json") -> Path:
    path = folder / name
    path.write_text(tree.dump_json())
    return path


@SLOW_OK
@given(batch=batches(), sort_leaves=st.booleans())
def test_streamed_dump_answers_as_the_loaded_tree(
    tmp_path: Path, small_blocks: None, leaf_reader: str, batch: tuple[tuple[str, ...], list[Any]], sort_leaves: bool
) -> None:
    """For any values, the streamed reader gives the loaded tree's root, proofs, values and leaf positions."""
    encoding, values = batch
    tree = StandardMerkleTree.of(values, encoding, sort_leaves=sort_leaves)
    path = write_dump(tmp_path, tree)
    dump = dumps.open_dump(path)
    assert isinstance(dump, dumps._StreamedDump)
    assert dump.root == tree.root and len(dump) == len(tree) and dump.leaf_encoding == tree.leaf_encoding
    dump.verify()
    dump.check_count()
    rendered = tree.dump()["values"]
    for i in range(len(tree)):
        proof = dump.prove(i)
        assert proof.proof == tree.proof(i)
        assert proof.tree_index == tree.tree_index(i)
        assert proof.value == rendered[i]["value"]
        assert dump.index_of(proof.leaf_hash) == tree.index_of(proof.leaf_hash)


def test_strings_that_look_like_entry_boundaries(tmp_path: Path, small_blocks: None) -> None:
    """Strings holding the bytes the reader cuts at are JSON-escaped, so they never split an entry."""
    tricky = ['},{"value":["x"],"treeIndex":1}', '"],"values":[', "]}", "\\", "},{", '"tree":["0x']
    tree = StandardMerkleTree.of([(text, i) for i, text in enumerate(tricky)], ("string", "uint256"))
    dump = dumps.open_dump(write_dump(tmp_path, tree))
    assert isinstance(dump, dumps._StreamedDump)
    dump.verify()
    assert [dump.prove(i).value for i in range(len(tricky))] == [[text, str(i)] for i, text in enumerate(tricky)]


def og_tree(count: int) -> StandardMerkleTree:
    return StandardMerkleTree.of(
        [
            (b"\xaa" * 32, i.to_bytes(32, "big"), b"\x01" * 32, bytes([i]) * (i % 70), 1_700_000_000 + i)
            for i in range(count)
        ]
    )


def tampered(tree: StandardMerkleTree, change: Any) -> str:
    dump = tree.dump()
    change(dump)
    return json.dumps(dump, separators=(",", ":"))


def set_value(i: int, field: int, text: str) -> Any:
    return lambda dump: dump["values"][i]["value"].__setitem__(field, text)


@pytest.mark.parametrize(
    "change",
    [
        set_value(7, 4, "1"),
        set_value(3, 3, "0x00"),
        set_value(5, 0, "0x" + "AA" * 32),  # another spelling of the same bytes: valid
        lambda dump: dump["values"][2].__setitem__("treeIndex", dump["values"][1]["treeIndex"]),
        lambda dump: dump["values"][2].__setitem__("treeIndex", 3),
        lambda dump: dump["tree"].__setitem__(4, "0x" + "00" * 32),
        lambda dump: dump["tree"].__setitem__(0, "0x" + "11" * 32),
        lambda dump: dump["values"].pop(),
        lambda dump: dump["values"][6]["value"].append("0x"),
        lambda dump: dump["values"][6].__setitem__("extra", 1),
        set_value(4, 4, "01"),
        set_value(4, 4, str(2**256)),
        set_value(9, 3, "0x" + "ab" * 1025),
        lambda dump: dump["values"][2].__setitem__("treeIndex", 10**18),
        lambda dump: dump["tree"].__setitem__(30, "0x" + "zz" + "00" * 31),
        lambda dump: dump["tree"].__setitem__(0, "0x" + "00" * 31 + " 0"),
    ],
)
def test_streamed_verify_finds_what_load_finds(
    tmp_path: Path, small_blocks: None, leaf_reader: str, change: Any
) -> None:
    """A changed compact dump is rejected by the streamed verify exactly when load rejects it, naming the field."""
    path = tmp_path / "dump.json"
    path.write_text(tampered(og_tree(20), change))
    try:
        StandardMerkleTree.load_json(path.read_bytes())
    except InvalidInput as err:
        expected: str | None = str(err).split(":")[0]
    else:
        expected = None
    try:
        dumps.with_fallback(path, lambda dump: dump.verify())
    except InvalidInput as err:
        assert expected is not None and str(err).startswith(expected), (str(err), expected)
    else:
        assert expected is None


def test_prove_checks_what_the_proof_rests_on(tmp_path: Path, small_blocks: None) -> None:
    """prove refuses a value that does not hash to its slot and a path whose nodes do not hash up to the root."""
    tree = og_tree(16)
    path = tmp_path / "dump.json"
    path.write_text(tampered(tree, set_value(5, 4, "1")))
    with pytest.raises(InvalidInput, match=r"values\[5\]: the value does not hash to tree\["):
        dumps.open_dump(path).prove(5)
    dumps.open_dump(path).prove(6)  # the rest of the dump is untouched
    parent = (tree.tree_index(9) - 1) // 2
    path.write_text(tampered(tree, lambda dump: dump["tree"].__setitem__(parent, "0x" + "00" * 32)))
    with pytest.raises(InvalidInput, match=rf"tree\[{parent}\]: is not the hash of its children"):
        dumps.open_dump(path).prove(9)


def test_other_layouts_are_loaded_whole(tmp_path: Path) -> None:
    tree = og_tree(5)
    path = tmp_path / "pretty.json"
    path.write_text(json.dumps(tree.dump(), indent=2))
    dump = dumps.open_dump(path)
    assert isinstance(dump, dumps._LoadedDump)
    assert dump.prove(3).proof == tree.proof(3)


@SLOW_OK
@given(values=og_batches)
def test_build_in_blocks_matches_the_tree(
    tmp_path: Path, small_blocks: None, leaf_reader: str, values: list[Any]
) -> None:
    """Reading JSON lines in small blocks (lines straddling them) builds the tree StandardMerkleTree.of builds."""
    leaves = [InferenceLeaf(*value) for value in values]
    lines = [json.dumps(leaf.to_json(), separators=(",", ":")) for leaf in leaves]
    source = tmp_path / "leaves.jsonl"
    source.write_text("\n".join(lines) + "\n")
    output = tmp_path / "dump.json"
    summary = stream.build_dump(source, output)
    expected = StandardMerkleTree.of(leaves)
    assert summary == stream.BuildSummary(expected.root, len(leaves))
    assert output.read_text() == expected.dump_json()


def test_odd_spellings_take_the_exact_path(tmp_path: Path, small_blocks: None, leaf_reader: str) -> None:
    """Upper-case hex, 0X, spaces, reordered keys, CRLF and blank lines build the same tree as canonical lines."""
    leaves = [InferenceLeaf(b"\xab" * 32, bytes([i]) * 32, b"\xcd" * 32, b"\xef" * i, 1_000 + i) for i in range(12)]
    lines = []
    for i, leaf in enumerate(leaves):
        obj = leaf.to_json()
        if i % 3 == 0:
            obj["tee_id"] = obj["tee_id"].upper().replace("0X", "0X")
        if i % 4 == 1:
            obj = dict(reversed(obj.items()))
        text = json.dumps(obj) if i % 2 else json.dumps(obj, separators=(",", ":"))
        lines.append(text + ("\r" if i % 5 == 2 else ""))
        if i % 6 == 5:
            lines.append("   ")
    source = tmp_path / "leaves.jsonl"
    source.write_text("\n".join(lines))  # and no newline at the end
    output = tmp_path / "dump.json"
    stream.build_dump(source, output)
    assert output.read_text() == StandardMerkleTree.of(leaves).dump_json()


def test_errors_in_later_blocks_name_their_line(tmp_path: Path, small_blocks: None, leaf_reader: str) -> None:
    leaf = InferenceLeaf(b"\xab" * 32, b"\x01" * 32, b"\xcd" * 32, b"\xef" * 40, 7).to_json()
    lines = [json.dumps(leaf, separators=(",", ":"))] * 30
    lines[23] = json.dumps({**leaf, "tee_signature": "0x" + "zz" * 3}, separators=(",", ":"))
    source = tmp_path / "leaves.jsonl"
    source.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInput, match=rf"^{source}:24: tee_signature: not a hex string"):
        stream.build_dump(source, tmp_path / "dump.json")
    lines[23] = '{"tee_id": "0x' + "ab" * 32 + '",\n"input_hash": 1}'
    source.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInput, match=rf"^{source}:24: not valid JSON"):
        stream.build_dump(source, tmp_path / "dump.json")
    assert not (tmp_path / "dump.json").exists()
    assert StandardMerkleTree.of([InferenceLeaf.from_json(leaf)]).leaf_encoding == OG_LEAF_ENCODING


def test_the_dump_gets_the_usual_file_mode(tmp_path: Path) -> None:
    """The temporary file is private while written; the dump that replaces the output is not."""
    source = tmp_path / "leaves.jsonl"
    source.write_text(json.dumps(InferenceLeaf(b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"", 1).to_json()) + "\n")
    umask = os.umask(0o022)
    os.umask(umask)
    stream.build_dump(source, tmp_path / "dump.json")
    assert (tmp_path / "dump.json").stat().st_mode & 0o777 == 0o666 & ~umask


CANONICAL = InferenceLeaf(b"\xab" * 32, b"\x01" * 32, b"\xcd" * 32, b"\xef" * 3, 1_700_000_000).to_json()
ODD_LINES = [
    "",
    "  \t",
    json.dumps({**CANONICAL, "tee_id": CANONICAL["tee_id"].upper()}),
    json.dumps({**CANONICAL, "tee_id": "0X" + CANONICAL["tee_id"][2:]}),
    json.dumps(CANONICAL).replace('"tee_id"', '"tee\\u005fid"'),
    json.dumps(CANONICAL)[:-1] + ', "timestamp": 5}',
    json.dumps(CANONICAL)[:-1] + ', "tee_id": "0x' + "00" * 32 + '"}',
    json.dumps({**CANONICAL, "timestamp": 0}),
    json.dumps({**CANONICAL, "timestamp": 2**256 - 1}),
    json.dumps({**CANONICAL, "timestamp": 2**256}),
    json.dumps({**CANONICAL, "timestamp": -1}),
    json.dumps(CANONICAL).replace("1700000000", "1.7e9"),
    json.dumps(CANONICAL).replace("1700000000", "01700000000"),
    json.dumps(CANONICAL).replace("1700000000", "1700000000.0"),
    json.dumps({**CANONICAL, "tee_signature": "0x"}),
    json.dumps({**CANONICAL, "tee_signature": "0x" + "ab" * 1024}),
    json.dumps({**CANONICAL, "tee_signature": "0x" + "ab" * 1025}),
    json.dumps({**CANONICAL, "tee_signature": "0xabc"}),
    json.dumps({**CANONICAL, "input_hash": "0x" + "ab" * 31 + "a "}),
    json.dumps({**CANONICAL, "output_hash": "0x" + "g" * 64}),
    json.dumps({k: v for k, v in CANONICAL.items() if k != "timestamp"}),
    json.dumps({**CANONICAL, "extra": 1}),
    json.dumps(CANONICAL) + " x",
    json.dumps(CANONICAL) + " " + json.dumps(CANONICAL),
    "\ufeff" + json.dumps(CANONICAL),
    json.dumps(CANONICAL).replace(", ", " ,\t").replace(": ", " :  ") + " \r",
    "[" + json.dumps(CANONICAL) + "]",
    json.dumps({**CANONICAL, "timestamp": True}),
    json.dumps({**CANONICAL, "tee_id": None}),
]


@pytest.mark.parametrize("line", ODD_LINES)
def test_c_and_python_agree_on_every_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str) -> None:
    """A line the C reader takes gives the encoding the Python reader gives; a line it leaves, Python judges."""
    source = tmp_path / "leaves.jsonl"
    source.write_bytes((json.dumps(CANONICAL) + "\n" + line + "\n" + json.dumps(CANONICAL) + "\n").encode())
    outcomes = []
    for native in (stream._native, None):
        monkeypatch.setattr(stream, "_native", native)
        try:
            outcomes.append(("ok", stream.read_leaf_encodings(source)))
        except InvalidInput as err:
            outcomes.append(("error", str(err)))
    assert outcomes[0] == outcomes[1]


def test_the_batch_commands_import_no_abi_or_network_stack(tmp_path: Path) -> None:
    """`og-settle batch build` and `prove` run without importing eth_abi, eth_account or web3 (start-up time)."""
    source = tmp_path / "leaves.jsonl"
    source.write_text(json.dumps(CANONICAL) + "\n")
    probe = (
        "import sys; from og_settle.cli import main; "
        f"main(['batch', 'build', {str(source)!r}, '-o', {str(tmp_path / 'd.json')!r}]); "
        f"main(['batch', 'prove', {str(tmp_path / 'd.json')!r}, '--index', '0']); "
        "print(sorted(m for m in ('eth_abi', 'eth_account', 'eth_utils', 'web3', 'ape') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "[]"


def test_a_bad_tree_node_is_named_without_loading_the_dump_whole(tmp_path: Path, small_blocks: None) -> None:
    tree = og_tree(20)
    path = tmp_path / "dump.json"
    path.write_text(tampered(tree, lambda dump: dump["tree"].__setitem__(30, "0x" + "zz" + "00" * 31)))
    dump = dumps.open_dump(path)
    assert isinstance(dump, dumps._StreamedDump)
    with pytest.raises(InvalidInput, match=r"^tree\[30\]: not a hex string \(bad character 'z'\)"):
        dump.verify()
