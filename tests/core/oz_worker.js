// A long-lived @openzeppelin/merkle-tree worker for the cross-implementation tests.
// Protocol: one JSON request per stdin line, one JSON answer per stdout line, so a whole Hypothesis run costs
// one Node start-up. Requests:
//   {"op": "of", "encoding": [...], "values": [...], "sortLeaves": bool, "multiproofs": [[i, ...], ...]}
//   {"op": "load", "dump": "<JSON text>", "multiproofs": [...]}
//   {"op": "verify", "root": "0x..", "encoding": [...], "value": [...], "proof": ["0x.."]}
//   {"op": "verifyMulti", "root": "0x..", "encoding": [...], "multiproof": {leaves, proof, proofFlags}}
//   {"op": "leafHash", "encoding": [...], "value": [...]}
// Answers carry the tree's root, every getProof(i), the requested getMultiProof()s and JSON.stringify(dump()),
// or {"error": message} when the library throws.
'use strict';
const readline = require('readline');
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');
const { standardLeafHash } = require('@openzeppelin/merkle-tree/dist/hashes');

function describe(tree, multiproofs) {
  const proofs = [];
  for (let i = 0; i < tree.length; i++) proofs.push(tree.getProof(i));
  return {
    root: tree.root,
    proofs,
    multiproofs: (multiproofs || []).map(indices => tree.getMultiProof(indices)),
    dump: JSON.stringify(tree.dump()),
  };
}

function handle(request) {
  switch (request.op) {
    case 'of':
      return describe(
        StandardMerkleTree.of(request.values, request.encoding, { sortLeaves: request.sortLeaves }),
        request.multiproofs,
      );
    case 'load':
      return describe(StandardMerkleTree.load(JSON.parse(request.dump)), request.multiproofs);
    case 'verify':
      return { ok: StandardMerkleTree.verify(request.root, request.encoding, request.value, request.proof) };
    case 'verifyMulti':
      return { ok: StandardMerkleTree.verifyMultiProof(request.root, request.encoding, request.multiproof) };
    case 'leafHash':
      return { hash: standardLeafHash(request.encoding, request.value) };
    default:
      throw new Error(`unknown op ${request.op}`);
  }
}

const lines = readline.createInterface({ input: process.stdin, terminal: false });
lines.on('line', line => {
  let answer;
  try {
    answer = handle(JSON.parse(line));
  } catch (err) {
    answer = { error: String(err && err.message ? err.message : err) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
});
