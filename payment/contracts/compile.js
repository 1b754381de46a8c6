// compile.js compiles the Solidity sources of a directory (this one, or
// the one named by its argument) with the pinned solc from node_modules
// (see package.json) and prints solc's
// "combined JSON" (abi, bin, bin-runtime per contract) on stdout, the input
// abigen --combined-json expects. Used by gen.sh and by the bytecode test.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const dir = process.argv[2] ? path.resolve(process.argv[2]) : __dirname;
const sources = {};
for (const name of fs.readdirSync(dir).filter((f) => f.endsWith(".sol")).sort()) {
  sources[name] = { content: fs.readFileSync(path.join(dir, name), "utf8") };
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
let failed = false;
for (const e of output.errors || []) {
  process.stderr.write(e.formattedMessage || e.message);
  if (e.severity === "error") failed = true;
}
if (failed) process.exit(1);

const contracts = {};
for (const file of Object.keys(output.contracts).sort()) {
  for (const name of Object.keys(output.contracts[file]).sort()) {
    const c = output.contracts[file][name];
    contracts[file + ":" + name] = {
      abi: c.abi,
      bin: c.evm.bytecode.object,
      "bin-runtime": c.evm.deployedBytecode.object,
    };
  }
}
process.stdout.write(JSON.stringify({ contracts, version: solc.version() }, null, 1) + "\n");
