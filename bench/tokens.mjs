// tokens.mjs — counts tokens with a real tokenizer (npm `gpt-tokenizer`,
// o200k_base, installed into build/npm by `make npm-deps`).  Reads a JSON
// array of strings on stdin, prints a JSON array of their token counts.
// Used by bench/tokens.py (the `make bench` token table) and the interface
// size check in tests/eval.  Run with build/npm's Node (or Debian's).
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "build", "npm", "package.json"));
const { countTokens } = require("gpt-tokenizer/cjs/encoding/o200k_base");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const texts = JSON.parse(input);
  process.stdout.write(JSON.stringify(texts.map((t) => countTokens(t))) + "\n");
});
