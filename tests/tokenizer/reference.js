// The JavaScript reference for calm's tokenizers (@lenml/tokenizers, a port of
// transformers.js, independent of calm's C code). Two modes:
//
//   node reference.js fixture UDHR_DIR MODELS_DIR OUT_DIR
//       writes OUT_DIR/texts/NAME.txt (the fixture texts), OUT_DIR/nfc/NAME.txt
//       (their NFC form, what Qwen's normalizer makes of them) and
//       OUT_DIR/ids/MODEL/NAME.ids (one line of ids, special tokens added as
//       the model's configuration adds them) for MODEL in llama2 llama3 qwen3
//   node reference.js corpus UDHR_DIR OUT_FILE
//       writes the paragraphs of every UDHR declaration (about 7 MB in over
//       500 languages), the text jobs/bench-tokenize.sh times
//   node reference.js bench MODELS_DIR MODEL FILE REPEAT
//       encodes FILE REPEAT times in process (loading excluded) and prints
//       "js MODEL: X MB/s, Y tokens/s"
//
// NODE_PATH must hold @lenml/tokenizers (tests/tokenizer/fetch.sh prints it).
"use strict";
const fs = require("fs");
const path = require("path");
const { TokenizerLoader } = require("@lenml/tokenizers");

const MODELS = ["llama2", "llama3", "qwen3"];

function load(modelsDir, model) {
  const dir = path.join(modelsDir, model);
  const read = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
  return TokenizerLoader.fromPreTrained({
    tokenizerJSON: read("tokenizer.json"),
    tokenizerConfig: read("tokenizer_config.json"),
  });
}

// The paragraphs of one UDHR declaration (declaration/CODE.html), as text.
function udhr(dir, code, maxChars) {
  const html = fs.readFileSync(path.join(dir, "declaration", code + ".html"), "utf8");
  const paras = [...html.matchAll(/<p>([\s\S]*?)<\/p>/g)].map((m) =>
    m[1]
      .replace(/<[^>]*>/g, "")
      .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
      .replace(/&#([0-9]+);/g, (_, d) => String.fromCodePoint(parseInt(d, 10)))
      .replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&amp;/g, "&")
  );
  if (paras.length === 0) throw new Error(`${code}: no paragraphs`);
  // cut by code points, never inside a character
  return Array.from(paras.join("\n")).slice(0, maxChars).join("");
}

// Languages across scripts: Latin (with diacritics), Cyrillic, Greek,
// Hebrew, Arabic, Persian, Devanagari, Bengali, Tamil, Han (simplified and
// traditional), Japanese, Hangul, Thai, Lao, Khmer, Myanmar, Ethiopic,
// Georgian, Armenian, Tifinagh, Cherokee.
const LANGS = ["eng", "fra", "deu_1996", "spa", "por_PT", "vie", "pol", "tur", "yor", "zul",
  "rus", "ukr", "ell_monotonic", "heb", "arb", "pes_1", "hin", "ben", "tam", "cmn_hans",
  "cmn_hant", "jpn", "kor", "tha", "lao", "khm", "mya", "amh", "kat", "hye", "zgh", "chr_cased"];

const EDGE = {
  digits: "0 1 12 123 1234 12345 3.14159 1,000,000 2024-01-31 +49 (0)30 ٠١٢٣٤ ४५६ ３４５ ½ ²",
  spaces: "a  b   c\t\td\n\ne \n\t x    \n\n\n  y\r\n z\u00a0\u3000w\u2003v  ",
  leading_spaces: "   leading spaces and trailing   ",
  only_spaces: "     ",
  one_space: " ",
  newlines: "\n\n\nx\n",
  tabs_mixed: "\t \t\n \n\t\tif (x) {\n\t\treturn;\n\t}\n",
  empty: "",
  emoji: "I ❤️ 🦀! 👩‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👍🏽 thumbs, 🇩🇪🇯🇵 flags ✨🎉",
  code_c: "int main(int argc, char **argv) {\n    for (int i = 0; i < argc; i++) printf(\"%s\\n\", argv[i]);\n    return 0; // done\n}\n",
  code_py: "def f(x):\n    '''Doc.'''\n    if x >= 10:\n        return [i**2 for i in range(x)]  # squares\n    return {'k': x}\n",
  json: '{"a": [1, 2.5e-3, null], "b": {"c": "d\\u00e9"}, "e": true}',
  contractions: "I'm sure you're right, he'll go, she'd know, it's fine, we've seen THEY'LL DON'T O'Neil 's",
  special_llama3: "<|begin_of_text|>Hello<|end_of_text|> world<|reserved_special_token_5|>x<|eot_id|>",
  special_llama2: "<s>Hello</s> <s> world <unk>x</s>",
  special_qwen: "<|im_start|>user\nhi<|im_end|>\n<|endoftext|><think>ok</think> <tool_call>",
  special_partial: "<|begin_of_text <s <|im_start| </s",
  mixed_scripts: "Hello世界Привет мир مرحبا नमस्ते 안녕하세요 สวัสดี",
  combining: "e\u0301 a\u0300 A\u030a \u212b ﬁ Å \u1100\u1161\u11a8 o\u0308\u0304",
  metaspace_char: "a\u2581b \u2581\u2581 c\u2581",
  long_word: "x".repeat(3000) + " " + "ab".repeat(700) + " " + "世界".repeat(500),
  punctuation: "Wait... what?! (yes) [no] {maybe} -- \u2014 \u201cquoted\u201d \u00abguillemets\u00bb \u2026 ~!@#$%^&*_+=|\\/",
  bom_zwsp: "\ufeffstart \u200bzero\u200dwidth\u00adsoft",
};

function fixture(udhrDir, modelsDir, out) {
  const texts = {};
  for (const code of LANGS) texts["udhr_" + code] = udhr(udhrDir, code, 400);
  Object.assign(texts, EDGE);
  fs.mkdirSync(path.join(out, "texts"), { recursive: true });
  fs.mkdirSync(path.join(out, "nfc"), { recursive: true });
  for (const [name, text] of Object.entries(texts)) {
    fs.writeFileSync(path.join(out, "texts", name + ".txt"), text);
    fs.writeFileSync(path.join(out, "nfc", name + ".txt"), text.normalize("NFC"));
  }
  for (const model of MODELS) {
    const tok = load(modelsDir, model);
    const dir = path.join(out, "ids", model);
    fs.mkdirSync(dir, { recursive: true });
    for (const [name, text] of Object.entries(texts)) {
      const ids = tok.encode(text, { add_special_tokens: true });
      fs.writeFileSync(path.join(dir, name + ".ids"), ids.join(" ") + "\n");
    }
  }
  console.log(`reference.js: ${Object.keys(texts).length} texts x ${MODELS.length} models in ${out}`);
}

function corpus(udhrDir, out) {
  const dir = path.join(udhrDir, "declaration");
  const codes = fs.readdirSync(dir).filter((f) => f.endsWith(".html")).sort().map((f) => f.slice(0, -5));
  const texts = [];
  for (const c of codes) {
    try {
      texts.push(udhr(udhrDir, c, Infinity));
    } catch (e) {} // a declaration without paragraphs adds nothing
  }
  fs.writeFileSync(out, texts.join("\n"));
}

function bench(modelsDir, model, file, repeat) {
  const tok = load(modelsDir, model);
  const text = fs.readFileSync(file, "utf8");
  const bytes = Buffer.byteLength(text, "utf8");
  let ntok = 0;
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < repeat; r++) ntok += tok.encode(text, { add_special_tokens: true }).length;
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`js ${model}: ${((bytes * repeat) / sec / 1e6).toFixed(2)} MB/s, ` +
    `${(ntok / sec).toFixed(0)} tokens/s (${bytes} bytes x ${repeat} in ${sec.toFixed(2)} s)`);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "fixture" && args.length === 3) fixture(...args);
else if (mode === "corpus" && args.length === 2) corpus(...args);
else if (mode === "bench" && args.length === 4) bench(args[0], args[1], args[2], parseInt(args[3], 10));
else {
  console.error("usage: node reference.js fixture UDHR_DIR MODELS_DIR OUT_DIR\n" +
    "       node reference.js corpus UDHR_DIR OUT_FILE\n" +
    "       node reference.js bench MODELS_DIR MODEL FILE REPEAT");
  process.exit(2);
}
