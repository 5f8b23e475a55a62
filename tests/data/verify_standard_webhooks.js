// A shop in Node.js: verify captured deliveries with the npm package `standardwebhooks`.
// stdin: a JSON list of {"body", "headers", "secret", "raw", "clockOffsetSeconds"};
// stdout: a JSON list of {"ok": true, "payload": ...} or {"ok": false, "error": "..."}.
// "raw": the secret is a legacy one, its UTF-8 bytes the key (README, Shop webhooks).
// "clockOffsetSeconds": the shop's clock that far ahead (a replay received later).
"use strict";
const { Webhook } = require("standardwebhooks");

const realNow = Date.now;

function verify(check) {
  Date.now = () => realNow() + (check.clockOffsetSeconds || 0) * 1000;
  try {
    const hook = check.raw
      ? new Webhook(Buffer.from(check.secret, "utf8"), { format: "raw" })
      : new Webhook(check.secret);
    return { ok: true, payload: hook.verify(check.body, check.headers) };
  } catch (error) {
    return { ok: false, error: String(error.message || error) };
  } finally {
    Date.now = realNow;
  }
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  input += chunk;
});
process.stdin.on("end", () => {
  process.stdout.write(JSON.stringify(JSON.parse(input).map(verify)));
});
