// Signs governance messages with ethers v6, as a wallet would, and prints
// them as test vectors: node vectors.js > ../ethers-vectors.json
// The Go test TestEthersVectors checks that every replica accepts them.
const { ethers } = require("ethers");

const wallet = new ethers.Wallet(ethers.id("dpaas governance test vectors"));
const domain = {
  name: "dpaas governance",
  version: "1",
  chainId: 1337,
  salt: "0x" + "11".repeat(32),
};
const types = {
  Ballot: [
    { name: "proposal", type: "bytes32" },
    { name: "voter", type: "address" },
    { name: "choice", type: "uint32[]" },
    { name: "time", type: "uint64" },
    { name: "reason", type: "string" },
  ],
  Action: [
    { name: "kind", type: "string" },
    { name: "name", type: "string" },
    { name: "value", type: "bytes" },
  ],
  Proposal: [
    { name: "author", type: "address" },
    { name: "title", type: "string" },
    { name: "body", type: "string" },
    { name: "kind", type: "string" },
    { name: "choices", type: "string[]" },
    { name: "start", type: "uint64" },
    { name: "end", type: "uint64" },
    { name: "electorate", type: "string" },
    { name: "snapshot", type: "uint64" },
    { name: "quorum", type: "uint256" },
    { name: "threshold", type: "uint16" },
    { name: "actions", type: "Action[]" },
    { name: "created", type: "uint64" },
  ],
  Delegation: [
    { name: "delegator", type: "address" },
    { name: "delegate", type: "address" },
    { name: "time", type: "uint64" },
  ],
};
const domainType = [
  { name: "name", type: "string" },
  { name: "version", type: "string" },
  { name: "chainId", type: "uint256" },
  { name: "salt", type: "bytes32" },
];

const proposalID = "0x" + "ab".repeat(32);
const messages = [
  ["Ballot", { proposal: proposalID, voter: wallet.address, choice: ["0"], time: "1800000000000", reason: "" }],
  ["Ballot", { proposal: proposalID, voter: wallet.address, choice: ["2", "0", "1"], time: "1800000000123", reason: "cheaper rides 🚕, über alles" }],
  ["Proposal", {
    author: wallet.address, title: "Raise the ride fee to 3%", body: "Drivers asked for it.", kind: "basic",
    choices: [], start: "1800000000000", end: "1800259200000", electorate: "members", snapshot: "0",
    quorum: "2", threshold: "0",
    actions: [{ kind: "set-param", name: "fee-bps", value: ethers.hexlify(ethers.toUtf8Bytes("300")) }],
    created: "1800000000000",
  }],
  ["Proposal", {
    author: wallet.address, title: "Pick the logo", body: "", kind: "ranked-choice",
    choices: ["green", "yellow", "black"], start: "1800000000000", end: "1800000600000", electorate: "members",
    snapshot: "0", quorum: "0", threshold: "5000", actions: [], created: "1799999999999",
  }],
  ["Delegation", { delegator: wallet.address, delegate: "0x" + "22".repeat(20), time: "1800000000456" }],
];

async function main() {
  const out = [];
  for (const [primaryType, message] of messages) {
    const only = { [primaryType]: types[primaryType] };
    if (primaryType === "Proposal") only.Action = types.Action;
    const typedData = { types: { EIP712Domain: domainType, ...only }, primaryType, domain: { ...domain, chainId: String(domain.chainId) }, message };
    const digest = ethers.TypedDataEncoder.hash(domain, only, message);
    const signature = await wallet.signTypedData(domain, only, message);
    out.push({ typedData, digest, signature, signer: wallet.address });
  }
  process.stdout.write(JSON.stringify(out, null, 1) + "\n");
}
main().catch((e) => { console.error(e); process.exit(1); });
