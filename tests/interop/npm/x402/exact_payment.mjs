// Pay through a facilitator with the unmodified npm @x402/core + @x402/evm 2.27.0, as their documentation shows.
//
// Runs with this folder's own node_modules (tests/support/sdk_envs.py installs package-lock.json with `npm ci`).
// Reads one JSON object on stdin:
//   {facilitator, apiKey, network, asset, payTo, payerKey, maxTimeoutSeconds, price | money, settles,
//    rpcUrl?, gasSponsoring?, tokenDomain?}
// The resource server (x402ResourceServer over HTTPFacilitatorClient, createAuthHeaders sending the bearer key)
// builds exact Permit2 requirements from the facilitator's /supported, the client (x402Client with the EVM exact
// scheme over a viem account, OPG allowed through setSpendControls) signs them, and the resource server verifies
// and settles `settles` times. Prints one JSON object: {kind, requirements, payload, verify, settles}.
// Gasless approval (x402's eip2612GasSponsoring): `gasSponsoring` makes the resource server declare the extension in
// its 402 answer, `rpcUrl` is the client scheme's RPC option (it backfills the signer's readContract), so a payer
// short of Permit2 allowance adds its EIP-2612 permit; `tokenDomain` ({name, version}) goes into `extra`.
import { readFileSync } from "node:fs";

import { x402Client } from "@x402/core/client";
import { HTTPFacilitatorClient, x402ResourceServer } from "@x402/core/server";
import { ExactEvmScheme as ExactEvmClientScheme } from "@x402/evm/exact/client";
import { ExactEvmScheme as ExactEvmServerScheme } from "@x402/evm/exact/server";
import { privateKeyToAccount } from "viem/accounts";

const job = JSON.parse(readFileSync(0, "utf8"));
const bearer = job.apiKey ? { Authorization: `Bearer ${job.apiKey}` } : {};
const facilitator = new HTTPFacilitatorClient({
  url: job.facilitator,
  createAuthHeaders: async () => ({ verify: bearer, settle: bearer, supported: {} }),
});

const server = new x402ResourceServer(facilitator);
server.register(job.network, new ExactEvmServerScheme());
await server.initialize(); // fetches /supported

const client = new x402Client();
const rpc = job.rpcUrl ? { rpcUrl: job.rpcUrl } : undefined;
client.register(job.network, new ExactEvmClientScheme(privateKeyToAccount(job.payerKey), rpc));
client.setSpendControls({ allowedAssets: [{ network: job.network, asset: job.asset }] });

const attempt = async (step) => {
  try {
    return await step();
  } catch (error) {
    return { error: `${error?.name ?? "Error"}: ${error?.message ?? error}` };
  }
};

const requirements = await server.buildPaymentRequirements({
  scheme: "exact",
  payTo: job.payTo,
  // `money` ("$0.50"): the SDK prices in its default asset for the network (USDC, paid with EIP-3009).
  price: job.money ?? {
    amount: String(job.price),
    asset: job.asset,
    extra: { assetTransferMethod: "permit2", ...(job.tokenDomain ?? {}) },
  },
  network: job.network,
  maxTimeoutSeconds: job.maxTimeoutSeconds ?? 300,
});
// The declaration the x402 extension defines (info: description and version); @x402/evm has no helper for it.
const declared = job.gasSponsoring
  ? {
      eip2612GasSponsoring: {
        info: { description: "The facilitator accepts an EIP-2612 permit of the asset for Permit2.", version: "1" },
      },
    }
  : undefined;
const required = await server.createPaymentRequiredResponse(
  requirements,
  { url: "http://127.0.0.1/paid", description: "og-settle interop" },
  undefined,
  declared,
);
const payload = await client.createPaymentPayload(required);
const verify = await attempt(() => server.verifyPayment(payload, payload.accepted));
const settles = [];
for (let i = 0; i < (job.settles ?? 1); i++) {
  settles.push(await attempt(() => server.settlePayment(payload, payload.accepted)));
}
const kind = server.getSupportedKind(2, job.network, "exact") ?? null;
console.log(JSON.stringify({ kind, requirements: requirements[0], payload, verify, settles }));
