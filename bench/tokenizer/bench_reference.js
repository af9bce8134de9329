// Single-thread encode throughput of Hugging Face's Rust `tokenizers` (npm
// @anush008/tokenizers) on the parity corpus, for the C++ benchmark to
// compare against in the same run. Prints one JSON object:
//   {"<name>": {"bytes": B, "seconds": S, "mb_per_s": X}, ...}
// Usage: TOKENIZERS_PARALLELISM=false node bench_reference.js <corpus.jsonl> [min_seconds]
'use strict';
const path = require('path');
const {loadTokenizer, readCorpus, NAMES} = require(
    path.resolve(__dirname, '..', '..', 'tests', 'tokenizer', 'make_reference.js'));

async function main() {
  const corpus = process.argv[2];
  const minSeconds = Number(process.argv[3] || 1.0);
  const lines = readCorpus(corpus);
  const bytes = lines.reduce((n, l) => n + Buffer.byteLength(l, 'utf8'), 0);
  const out = {};
  for (const name of NAMES) {
    const tok = loadTokenizer(name);
    // One batch call per pass keeps the N-API overhead per line small;
    // TOKENIZERS_PARALLELISM=false keeps Rust on one thread.
    await tok.encodeBatch(lines, {addSpecialTokens: true});  // warm-up (fills the cache)
    let passes = 0;
    const t0 = process.hrtime.bigint();
    let seconds = 0;
    while (seconds < minSeconds) {
      await tok.encodeBatch(lines, {addSpecialTokens: true});
      ++passes;
      seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    }
    out[name] = {bytes: bytes * passes, seconds, mb_per_s: bytes * passes / seconds / 1e6};
  }
  console.log(JSON.stringify(out));
}
main().catch((e) => { console.error(e); process.exit(1); });
