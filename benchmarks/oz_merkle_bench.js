// Times @openzeppelin/merkle-tree on the values in a JSON file: StandardMerkleTree.of(values, encoding), then
// tree.root, then tree.getProof(i) for every i (each proof is self-verified by the library, as og_settle's are).
// Reading and parsing the file is not timed. Prints one JSON object: {root, count, of_seconds, proofs_seconds}.
// Usage: node benchmarks/oz_merkle_bench.js VALUES.json   (VALUES.json: {"encoding": [...], "values": [...]})
'use strict';
const fs = require('fs');
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');

const { encoding, values } = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const seconds = start => Number(process.hrtime.bigint() - start) / 1e9;

let start = process.hrtime.bigint();
const tree = StandardMerkleTree.of(values, encoding);
const root = tree.root;
const ofSeconds = seconds(start);

start = process.hrtime.bigint();
let nodes = 0;
for (let i = 0; i < tree.length; i++) nodes += tree.getProof(i).length;
const proofsSeconds = seconds(start);

process.stdout.write(JSON.stringify({ root, count: tree.length, nodes, of_seconds: ofSeconds, proofs_seconds: proofsSeconds }) + '\n');
