#!/usr/bin/env node
// A `solc` front end over solc-js (emscripten, no native binary), answering the two calls
// py-solc-x and ape-solidity make: `--version` and `--standard-json` with input on stdin.
// Usage: solc.js --package <npm package name> [--version | --standard-json [--base-path P] [--include-path P]... [--allow-paths ...]]
"use strict";
const fs = require("fs");
const path = require("path");

function fail(message) {
  process.stderr.write(`og-settle solc shim: ${message}\n`);
  process.exit(2);
}

const major = Number(process.versions.node.split(".")[0]);
if (major < 20) fail(`Node ${process.versions.node} is too old; og-settle needs Node 20 or newer.`);

const argv = process.argv.slice(2);
let pkg = "solc";
let mode = null;
let basePath = process.cwd();
const includePaths = [];
for (let i = 0; i < argv.length; i++) {
  const arg = argv[i];
  if (arg === "--package") pkg = argv[++i];
  else if (arg === "--version") mode = "version";
  else if (arg === "--standard-json") mode = "standard-json";
  else if (arg === "--base-path") basePath = argv[++i];
  else if (arg === "--include-path") includePaths.push(argv[++i]);
  else if (arg === "--allow-paths") i++; // reads are resolved below; nothing else is opened
  else if (arg.startsWith("--allow-paths=") || arg.startsWith("--base-path=")) {
    if (arg.startsWith("--base-path=")) basePath = arg.slice("--base-path=".length);
  } else if (arg === "-") continue;
  else fail(`unsupported argument ${arg}`);
}

let solc;
try {
  solc = require(pkg);
} catch (err) {
  fail(`cannot load npm package ${pkg}: run \`npm ci\` in the project root (${err.message.split("\n")[0]})`);
}

if (mode === "version") {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}
if (mode !== "standard-json") fail("expected --version or --standard-json");

const roots = [basePath, ...includePaths].map((p) => path.resolve(p));
function findImports(importPath) {
  const candidates = path.isAbsolute(importPath) ? [importPath] : roots.map((r) => path.join(r, importPath));
  for (const candidate of candidates) {
    if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) {
      return { contents: fs.readFileSync(candidate, "utf8") };
    }
  }
  return { error: `File not found: ${importPath} (searched ${roots.join(", ")})` };
}

const input = fs.readFileSync(0, "utf8");
process.stdout.write(solc.compile(input, { import: findImports }));
