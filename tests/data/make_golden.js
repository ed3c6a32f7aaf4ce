// Regenerates the golden dumps in this folder with @openzeppelin/merkle-tree (run from the repository root:
// `node tests/data/make_golden.js`). The values are fixed, so the output is deterministic.
'use strict';
const fs = require('fs');
const path = require('path');
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');

const hex = (byte, n) => '0x' + byte.repeat(n);
const og = [];
for (let i = 0; i < 7; i++) {
  const b = (i + 1).toString(16).padStart(2, '0');
  og.push([hex('a1', 32), hex(b, 32), hex('c' + (i % 10), 32), hex(b, 31 + 16 * i), String(1700000000 + i)]);
}
og.push([hex('a1', 32), hex('ff', 32), hex('00', 32), '0x', '0']); // empty signature, timestamp 0
og.push([hex('a1', 32), hex('ee', 32), hex('11', 32), hex('5a', 256), (2n ** 256n - 1n).toString()]);

const general = [
  ['0x1111111111111111111111111111111111111111', '5000000000000000000'],
  ['0x2222222222222222222222222222222222222222', '2500000000000000000'],
  ['0x3333333333333333333333333333333333333333', '1'],
];

const write = (name, tree, multiproof) => {
  const file = path.join(__dirname, name);
  fs.writeFileSync(file, JSON.stringify(tree.dump()));
  const proofs = [...Array(tree.length).keys()].map(i => tree.getProof(i));
  const expected = { root: tree.root, proofs, multiproof: { indices: multiproof, ...tree.getMultiProof(multiproof) } };
  fs.writeFileSync(file.replace(/\.json$/, '.expected.json'), JSON.stringify(expected, null, 1) + '\n');
};
write('og_batch.golden.json', StandardMerkleTree.of(og, ['bytes32', 'bytes32', 'bytes32', 'bytes', 'uint256']), [0, 3, 8]);
write('address_uint.golden.json', StandardMerkleTree.of(general, ['address', 'uint256']), [0, 2]);
write('og_batch_unsorted.golden.json', StandardMerkleTree.of(og.slice(0, 5), ['bytes32', 'bytes32', 'bytes32', 'bytes', 'uint256'], { sortLeaves: false }), [1, 4]);
