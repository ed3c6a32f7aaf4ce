"""``og-settle batch``: build, prove, verify and inspect, run in-process through the real argument parser."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from og_settle import InferenceLeaf, StandardMerkleTree
from og_settle.cli import main


def leaf_json(i: int, **changes: Any) -> dict[str, Any]:
    leaf = InferenceLeaf(
        tee_id=b"\xaa" * 32,
        input_hash=i.to_bytes(32, "big"),
        output_hash=(i * 7).to_bytes(32, "big"),
        tee_signature=bytes([i % 256]) * 256,
        timestamp=1_700_000_000 + i,
    ).to_json()
    leaf.update(changes)
    return leaf


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_build_prove_verify_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    leaves = [leaf_json(i) for i in range(10)]
    source = write_lines(
        tmp_path / "leaves.jsonl",
        [json.dumps(leaf) for leaf in leaves[:5]] + ["", "  "] + [json.dumps(leaf) for leaf in leaves[5:]],
    )
    dump_path = tmp_path / "batch.json"

    code, out, _ = run(capsys, "batch", "build", str(source), "-o", str(dump_path), "--json")
    assert code == 0
    summary = json.loads(out)
    assert set(summary) == {"root", "count"}
    expected = StandardMerkleTree.of([InferenceLeaf.from_json(leaf) for leaf in leaves])
    assert summary == {"root": "0x" + expected.root.hex(), "count": 10}
    assert dump_path.read_text() == expected.dump_json()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.json", "leaves.jsonl"]  # no temporary file left

    code, out, _ = run(capsys, "batch", "prove", str(dump_path), "--index", "3", "--json")
    assert code == 0
    proof = json.loads(out)
    assert set(proof) == {"root", "index", "tree_index", "leaf_hash", "value", "proof"}
    assert proof["index"] == 3 and proof["root"] == summary["root"]
    value = InferenceLeaf.from_json(leaves[3]).values()
    assert StandardMerkleTree.verify(proof["root"], expected.leaf_encoding, value, proof["proof"])

    code, out, _ = run(capsys, "batch", "prove", str(dump_path), "--leaf-hash", proof["leaf_hash"], "--json")
    assert code == 0 and json.loads(out) == proof

    code, out, _ = run(capsys, "batch", "verify", str(dump_path))
    assert code == 0 and "valid standard-v1 dump, 10 leaves" in out

    code, out, _ = run(capsys, "batch", "inspect", str(dump_path), "--json")
    assert code == 0
    assert json.loads(out) == {
        "format": "standard-v1",
        "root": summary["root"],
        "count": 10,
        "leafEncoding": ["bytes32", "bytes32", "bytes32", "bytes", "uint256"],
    }


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"tee_id": "0x12", ', "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        (json.dumps(leaf_json(0, tee_id="0x" + "ab" * 31)), "tee_id: expected 32 bytes, got 31"),
        (json.dumps(leaf_json(0, input_hash="ab" * 32)), "input_hash: expected a 0x-prefixed hex string"),
        (json.dumps(leaf_json(0, output_hash="0x" + "zz" * 32)), "output_hash: not a hex string"),
        (json.dumps(leaf_json(0, tee_signature="0x" + "00" * 1025)), "tee_signature: 1025 bytes is over the limit"),
        (json.dumps(leaf_json(0, timestamp=2**256)), "timestamp: 1157920892373161954235709850086879078532699846656"),
        (json.dumps(leaf_json(0, timestamp=-5)), "timestamp: -5 is negative"),
        (json.dumps(leaf_json(0, timestamp="1700000000")), "timestamp: expected a JSON integer"),
        (json.dumps(leaf_json(0, timestamp=1.5)), "timestamp: expected a JSON integer"),
        (json.dumps({**leaf_json(0), "model": "x"}), "model: unknown field"),
        (json.dumps({k: v for k, v in leaf_json(0).items() if k != "output_hash"}), "output_hash: missing field"),
    ],
)
def test_bad_line_is_reported_with_its_number_and_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad_line: str, message: str
) -> None:
    lines = [json.dumps(leaf_json(i)) for i in range(3)] + ["", bad_line, json.dumps(leaf_json(9))]
    source = write_lines(tmp_path / "leaves.jsonl", lines)
    output = tmp_path / "out" / "batch.json"
    output.parent.mkdir()

    code, out, err = run(capsys, "batch", "build", str(source), "-o", str(output), "--json")

    assert code == 2
    assert out == ""
    assert f"{source}:5: {message}" in err
    assert list(output.parent.iterdir()) == []  # neither the dump nor a temporary file


def test_failed_build_leaves_an_existing_dump_untouched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "batch.json"
    output.write_text("previous dump")
    source = write_lines(tmp_path / "leaves.jsonl", [json.dumps(leaf_json(1)), "{"])
    code, _, err = run(capsys, "batch", "build", str(source), "-o", str(output))
    assert code == 2 and f"{source}:2: not valid JSON" in err
    assert output.read_text() == "previous dump"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.json", "leaves.jsonl"]


def test_empty_input_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = write_lines(tmp_path / "empty.jsonl", ["", " "])
    code, _, err = run(capsys, "batch", "build", str(empty), "-o", str(tmp_path / "d.json"))
    assert code == 2 and "no leaves" in err
    code, _, err = run(capsys, "batch", "build", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "d.json"))
    assert code == 2 and "nope.jsonl: cannot read" in err
    assert not (tmp_path / "d.json").exists()


def test_verify_reports_a_tampered_dump(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dump = StandardMerkleTree.of([InferenceLeaf.from_json(leaf_json(i)) for i in range(4)]).dump()
    dump["values"][2]["value"][4] = "1"
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(dump))
    code, out, err = run(capsys, "batch", "verify", str(path), "--json")
    assert code == 1
    assert json.loads(out)["valid"] is False
    assert "values[2]: the value does not hash to tree[" in err
    code, _, err = run(capsys, "batch", "inspect", str(path))
    assert code == 2 and "values[2]" in err


def test_prove_rejects_unknown_leaf_and_bad_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "batch.json"
    path.write_text(StandardMerkleTree.of([InferenceLeaf.from_json(leaf_json(i)) for i in range(3)]).dump_json())
    code, _, err = run(capsys, "batch", "prove", str(path), "--index", "3")
    assert code == 2 and "--index: 3 is out of range" in err
    code, _, err = run(capsys, "batch", "prove", str(path), "--leaf-hash", "0x" + "00" * 32)
    assert code == 2 and "--leaf-hash: 0x" in err and "is not a leaf" in err
    code, _, err = run(capsys, "batch", "prove", str(path), "--leaf-hash", "0x00")
    assert code == 2 and "--leaf-hash: expected 32 bytes, got 1" in err


def test_compact_dumps_are_streamed_and_each_command_checks_its_part(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a compact dump with one changed value: verify finds it (exit 1), prove refuses that value and proves the
    others, inspect (layout and counts only, no hashing) still reports the dump."""
    tree = StandardMerkleTree.of([InferenceLeaf.from_json(leaf_json(i)) for i in range(6)])
    dump = tree.dump()
    dump["values"][2]["value"][4] = "1"
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(dump, separators=(",", ":")))
    code, _, err = run(capsys, "batch", "verify", str(path))
    assert code == 1 and "values[2]: the value does not hash to tree[" in err
    code, _, err = run(capsys, "batch", "prove", str(path), "--index", "2")
    assert code == 2 and "values[2]: the value does not hash to tree[" in err
    code, out, _ = run(capsys, "batch", "prove", str(path), "--index", "3", "--json")
    assert code == 0 and json.loads(out)["proof"] == ["0x" + node.hex() for node in tree.proof(3)]
    code, out, _ = run(capsys, "batch", "inspect", str(path), "--json")
    assert code == 0 and json.loads(out)["count"] == 6
    path.write_text(json.dumps({**dump, "values": dump["values"][:5]}, separators=(",", ":")))
    code, _, err = run(capsys, "batch", "inspect", str(path))
    assert code == 2 and "values: a tree of 11 nodes has 6 leaves, but there are 5" in err
