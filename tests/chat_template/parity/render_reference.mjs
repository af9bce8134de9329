// Renders every parity model's chat template for every checked-in
// conversation with @huggingface/jinja, the reference Jinja that Hugging Face
// uses in JavaScript. Usage: node render_reference.mjs <repo_root> <out.json>
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const [root, outPath] = process.argv.slice(2);
if (!root || !outPath) {
  console.error("usage: node render_reference.mjs <repo_root> <out.json>");
  process.exit(2);
}
const require = createRequire(path.join(root, "tests/parity/package.json"));
const { Template } = require("@huggingface/jinja");
const here = path.join(root, "tests/chat_template/parity");
const models = JSON.parse(fs.readFileSync(path.join(here, "models.json"), "utf8"));
const conversations = JSON.parse(fs.readFileSync(path.join(here, "conversations.json"), "utf8"));

function tokenString(t) {
  if (t === undefined || t === null) return "";
  return typeof t === "string" ? t : t.content;
}

const results = [];
for (const model of models) {
  const config = JSON.parse(fs.readFileSync(path.join(root, model.dir, "tokenizer_config.json"), "utf8"));
  let source = config.chat_template;
  if (Array.isArray(source)) source = source.find((t) => t.name === "default").template;
  if (typeof source !== "string") throw new Error(`${model.name}: no chat_template`);
  const template = new Template(source);
  for (const conv of conversations) {
    for (const addGenerationPrompt of [false, true]) {
      const entry = { model: model.name, conversation: conv.name, add_generation_prompt: addGenerationPrompt };
      try {
        entry.output = template.render({
          messages: conv.messages,
          add_generation_prompt: addGenerationPrompt,
          bos_token: tokenString(config.bos_token),
          eos_token: tokenString(config.eos_token),
          ...(conv.vars ?? {}),
        });
      } catch (e) {
        entry.error = String(e.message ?? e);
      }
      results.push(entry);
    }
  }
}
fs.writeFileSync(outPath, JSON.stringify(results, null, 1));
console.log(`rendered ${results.length} reference cases to ${outPath}`);
