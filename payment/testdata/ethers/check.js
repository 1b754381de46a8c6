// check.js: what an independent Ethereum client (ethers v6, pinned in
// package.json) sees of a dpaas dev chain and its vouchers. Run by
// TestEthersInterop (payment/ethers_test.go), which passes the facts as
// JSON in the DPAAS_CHECK environment variable:
//   {url, chainId, token, channels, payerKey, holder, to, amount,
//    channel, voucherAmount, voucherAmount2, escrow, deal, payeeBps,
//    fund, epoch, recipients, amounts, nextCommittee, budget, nonce}
// and reads one JSON object from stdout.
"use strict";
const { ethers } = require("ethers");

const erc20 = [
  "function name() view returns (string)",
  "function symbol() view returns (string)",
  "function decimals() view returns (uint8)",
  "function totalSupply() view returns (uint256)",
  "function balanceOf(address) view returns (uint256)",
  "function allowance(address, address) view returns (uint256)",
  "function transfer(address to, uint256 value) returns (bool)",
  "function approve(address spender, uint256 value) returns (bool)",
  "event Transfer(address indexed from, address indexed to, uint256 value)",
];
const channelsABI = [
  "function DOMAIN_SEPARATOR() view returns (bytes32)",
  "function voucherDigest(bytes32 id, uint256 amount) view returns (bytes32)",
];

async function main() {
  const f = JSON.parse(process.env.DPAAS_CHECK);
  const provider = new ethers.JsonRpcProvider(f.url, f.chainId, {
    staticNetwork: true,
    batchMaxCount: 1,
    pollingInterval: 20,
  });
  const wallet = new ethers.Wallet(f.payerKey, provider);
  const token = new ethers.Contract(f.token, erc20, wallet);
  const out = {};

  // Standard ERC-20 calls.
  out.name = await token.name();
  out.symbol = await token.symbol();
  out.decimals = Number(await token.decimals());
  out.totalSupply = (await token.totalSupply()).toString();
  out.balanceBefore = (await token.balanceOf(f.holder)).toString();
  // An EIP-1559 transfer, and an approve, sent and mined through JSON-RPC.
  const tx = await token.transfer(f.to, BigInt(f.amount));
  const receipt = await tx.wait();
  out.transferStatus = receipt.status;
  out.transferType = tx.type;
  out.transferLogs = receipt.logs
    .map((l) => token.interface.parseLog(l))
    .filter((e) => e && e.name === "Transfer")
    .map((e) => ({ from: e.args.from, to: e.args.to, value: e.args.value.toString() }));
  out.balanceAfter = (await token.balanceOf(f.holder)).toString();
  // The nonce from the latest block: the dev chain mines each transaction
  // as it arrives and keeps no pending block worth asking.
  const approve = await token.approve(f.channels, 12345n, {
    type: 0,
    gasPrice: (await provider.getFeeData()).gasPrice,
    nonce: await provider.getTransactionCount(wallet.address, "latest"),
  });
  out.approveType = approve.type;
  await approve.wait();
  out.allowance = (await token.allowance(f.holder, f.channels)).toString();

  // EIP-712 vouchers.
  const domain = { name: "dpaas Channels", version: "1", chainId: f.chainId, verifyingContract: f.channels };
  const types = { Voucher: [ { name: "channel", type: "bytes32" }, { name: "amount", type: "uint256" } ] };
  const value = { channel: f.channel, amount: BigInt(f.voucherAmount) };
  out.signature = await wallet.signTypedData(domain, types, value);
  out.digest = ethers.TypedDataEncoder.hash(domain, types, value);
  const channels = new ethers.Contract(f.channels, channelsABI, provider);
  out.contractDigest = await channels.voucherDigest(f.channel, BigInt(f.voucherAmount));
  out.domainSeparator = ethers.TypedDataEncoder.hashDomain(domain);
  out.contractDomainSeparator = await channels.DOMAIN_SEPARATOR();
  if (f.goSignature) {
    out.recoveredFromGo = ethers.verifyTypedData(domain, types, value, f.goSignature);
  }
  out.signature2 = await wallet.signTypedData(domain, types, { channel: f.channel, amount: BigInt(f.voucherAmount2) });
  out.payer = wallet.address;

  // An arbiter's EIP-712 ruling on an escrow deal, as a wallet signs it.
  const rulingDomain = { name: "dpaas Escrow", version: "1", chainId: f.chainId, verifyingContract: f.escrow };
  const rulingTypes = { Ruling: [ { name: "deal", type: "bytes32" }, { name: "payeeBps", type: "uint16" } ] };
  const ruling = { deal: f.deal, payeeBps: f.payeeBps };
  out.rulingDigest = ethers.TypedDataEncoder.hash(rulingDomain, rulingTypes, ruling);
  out.rulingSignature = await wallet.signTypedData(rulingDomain, rulingTypes, ruling);

  // A committee member's EIP-712 payout of a fund, and the fund's
  // governance messages. The table hash is abi.encode(address[],
  // uint256[]) hashed, computed here by ethers' own ABI coder.
  const fundDomain = { name: "dpaas Fund", version: "1", chainId: f.chainId, verifyingContract: f.fund };
  const amounts = f.amounts.map((a) => BigInt(a));
  out.tableHash = ethers.keccak256(ethers.AbiCoder.defaultAbiCoder().encode(["address[]", "uint256[]"], [f.recipients, amounts]));
  const fundABI = [
    "function tableHash(address[] recipients, uint256[] amounts) pure returns (bytes32)",
    "function payoutDigest(uint64 epoch, bytes32 hash) view returns (bytes32)",
  ];
  const fund = new ethers.Contract(f.fund, fundABI, provider);
  out.contractTableHash = await fund.tableHash(f.recipients, amounts);
  const payoutTypes = { Payout: [ { name: "epoch", type: "uint64" }, { name: "tableHash", type: "bytes32" } ] };
  const payout = { epoch: BigInt(f.epoch), tableHash: out.tableHash };
  out.payoutDigest = ethers.TypedDataEncoder.hash(fundDomain, payoutTypes, payout);
  out.contractPayoutDigest = await fund.payoutDigest(BigInt(f.epoch), out.tableHash);
  out.payoutSignature = await wallet.signTypedData(fundDomain, payoutTypes, payout);
  const committeeTypes = { SetCommittee: [ { name: "committee", type: "address[]" }, { name: "nonce", type: "uint64" } ] };
  const committee = { committee: f.nextCommittee, nonce: BigInt(f.nonce) };
  out.setCommitteeDigest = ethers.TypedDataEncoder.hash(fundDomain, committeeTypes, committee);
  out.setCommitteeSignature = await wallet.signTypedData(fundDomain, committeeTypes, committee);
  const budgetTypes = { SetBudget: [ { name: "budget", type: "uint256" }, { name: "nonce", type: "uint64" } ] };
  const budget = { budget: BigInt(f.budget), nonce: BigInt(f.nonce) };
  out.setBudgetDigest = ethers.TypedDataEncoder.hash(fundDomain, budgetTypes, budget);
  out.setBudgetSignature = await wallet.signTypedData(fundDomain, budgetTypes, budget);
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
  process.exit(1);
});
