// peer.mjs — the TypeScript @utcp/code-mode peer for `make bench`: registers
// the same loopback manuals as the engine, then answers JSON lines on stdin
// ({"id","code"}) with {"id","ok","result","logs","error"} — concurrently.
// callToolChain reports a chain that throws as a null result with the error
// in its logs, so compare.py checks every result, never just `ok`.
import fs from 'node:fs';
import readline from 'node:readline';
import { CodeModeUtcpClient } from '@utcp/code-mode';
import '@utcp/http';
import '@utcp/mcp';
import '@utcp/text';

// libraries log on stdout: keep it for the protocol
console.log = console.error;
console.info = console.error;
const manuals = JSON.parse(fs.readFileSync(process.argv[2], 'utf8')); // a file: see compare.py
const client = await CodeModeUtcpClient.create();
for (const m of manuals) {
  try { await client.registerManual(m); } catch (e) { process.stderr.write(`register ${m.name}: ${e}\n`); }
}
const tools = (await client.getTools()).map((t) => t.name);
process.stdout.write(JSON.stringify({ ready: true, tools: tools.length > 50 ? [`${tools.length} tools`] : tools }) + '\n');
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const { id, code } = JSON.parse(line);
  try {
    const r = await client.callToolChain(code, 30000);
    process.stdout.write(JSON.stringify({ id, ok: true, result: r.result ?? null, logs: r.logs ?? [] }) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ id, ok: false, error: String(e) }) + '\n');
  }
});
rl.on('close', () => process.exit(0));
