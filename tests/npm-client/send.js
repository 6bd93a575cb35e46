// Sends one message through the official `cloudmailin` client, unchanged, pointed at
// Postern: node send.js BASE_URL USERNAME API_KEY raw|message < message.json
// Prints {"ok": true, "result": …} or {"ok": false, "status": N, "message": "…"} on stdout.
const { MessageClient } = require("cloudmailin");

async function main() {
  const [baseURL, username, apiKey, kind] = process.argv.slice(2);
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const message = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const client = new MessageClient({ username, apiKey, baseURL });
  try {
    const result = kind === "raw"
      ? await client.sendRawMessage(message)
      : await client.sendMessage(message);
    console.log(JSON.stringify({ ok: true, result }));
  } catch (error) {
    // CloudMailinError: message/details = the server's "error", status = the HTTP status.
    console.log(JSON.stringify({
      ok: false,
      name: error.name,
      status: error.status === undefined ? null : error.status,
      message: error.message,
    }));
  }
}

main();
