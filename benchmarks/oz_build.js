// The @openzeppelin/merkle-tree counterpart of `og-settle batch build LEAVES.jsonl -o DUMP.json`, for `make bench`:
// read the JSON-lines leaves, StandardMerkleTree.of(values, OpenGradient encoding) (which validates and ABI-encodes
// every value), write JSON.stringify(tree.dump()) and print {"root", "count"}. Timed from outside as a whole process.
// Usage: node benchmarks/oz_build.js LEAVES.jsonl DUMP.json
'use strict';
const fs = require('fs');
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');

const ENCODING = ['bytes32', 'bytes32', 'bytes32', 'bytes', 'uint256'];
const [source, output] = process.argv.slice(2);
const values = [];
for (const line of fs.readFileSync(source, 'utf8').split('\n')) {
  if (!line.trim()) continue;
  const leaf = JSON.parse(line);
  values.push([leaf.tee_id, leaf.input_hash, leaf.output_hash, leaf.tee_signature, String(leaf.timestamp)]);
}
const tree = StandardMerkleTree.of(values, ENCODING);
fs.writeFileSync(output, JSON.stringify(tree.dump()));
process.stdout.write(JSON.stringify({ root: tree.root, count: tree.length }) + '\n');
