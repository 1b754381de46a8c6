// Reads {"key", "items": [{"typedData", "signature"}]} on stdin, where the
// SDK wrote each typed data and signed it; prints, for each, ethers'
// digest, ethers' own signature with key, and the address ethers recovers
// from the SDK's signature. Run by TestEthersCheck.
const { ethers } = require("ethers");

let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", async () => {
  const { key, items } = JSON.parse(input);
  const wallet = new ethers.Wallet(key);
  const out = [];
  for (const { typedData, signature } of items) {
    const types = { ...typedData.types };
    delete types.EIP712Domain;
    const domain = typedData.domain;
    out.push({
      digest: ethers.TypedDataEncoder.hash(domain, types, typedData.message),
      signature: await wallet.signTypedData(domain, types, typedData.message),
      recovered: ethers.verifyTypedData(domain, types, typedData.message, signature),
    });
  }
  process.stdout.write(JSON.stringify(out));
});
