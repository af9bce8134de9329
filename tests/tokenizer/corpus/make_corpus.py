#!/usr/bin/env python3
"""Writes corpus.jsonl (one JSON string per line) for the tokenizer parity
tests. Deterministic (seeded); re-run only to change the corpus:
  /usr/bin/python3 tests/tokenizer/corpus/make_corpus.py > tests/tokenizer/corpus/corpus.jsonl
"""
import json
import random

rng = random.Random(20261123)
lines = []
add = lines.append

# --- edge cases -------------------------------------------------------------
for s in ["", " ", "  ", "\n", "\n\n", "\r\n", "\r", "\t", "\t\t\n", " \n ", "a", "A", ".",
          "\u0000", "a\u0000b", "\u0001\u0002\u0003\u001f", "\u007f", "x\u0085y", "\u00a0",
          "a\u00a0b", "\u2028", "a\u2029b", "\u3000", "word\u3000word", "\u200b", "a\u200bb",
          "\ufeffBOM", "\u202eevil", "\u200d", "tab\tseparated\tvalues", "line1\r\nline2\r\n",
          "trailing   ", "   leading", "\n\n\nthree newlines", "mixed \t \n \r\n end",
          "\u000b\u000c", "form\u000cfeed", "\u1680ogham", "\u2000\u2001\u2002\u200a",
          "\u205f\u202f", "\u180e", "'", "''", "'s", " 's", "\u2019s", "$", "$$$",
          "\u00ad", "soft\u00adhyphen", "a\u180eb", "x \u180e y", "a\u0085\u0085b",
          "\u1680\u180e\u2000 z", "a\u001cb\u001d c\u001e\u001f", "p \u0085 q", "\ufffd", "a\ufffdb", "\U0010ffff", "\U000e0041"]:
    add(s)

# --- many scripts ------------------------------------------------------------
scripts = [
    "The quick brown fox jumps over the lazy dog.",
    "Pack my box with five dozen liquor jugs!",
    "你好，世界！今天天气很好，我们去公园散步吧。",
    "機械学習は人工知能の一分野です。ひらがなとカタカナ、漢字を混ぜて書きます。",
    "東京タワーの高さは333メートルです。",
    "안녕하세요, 세계! 한국어 문장을 토큰화합니다.",
    "مرحبا بالعالم! هذه جملة باللغة العربية مع أرقام ١٢٣٤٥٦٧٨٩٠.",
    "اَلسَّلَامُ عَلَيْكُمْ وَرَحْمَةُ اللهِ",
    "שלום עולם! זהו משפט בעברית עם ניקוד: שָׁלוֹם.",
    "नमस्ते दुनिया! यह हिंदी में एक वाक्य है। संख्याएँ: १२३४५",
    "क्षत्रिय ज्ञान श्री द्विवेदी",
    "สวัสดีชาวโลก ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ",
    "Привет, мир! Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Ελληνικά: Γειά σου Κόσμε, ΑΒΓΔ αβγδ ς σ.",
    "Tiếng Việt có nhiều dấu: Trường Đại học Bách khoa Hà Nội.",
    "தமிழ் மொழி மிகவும் பழமையானது.",
    "বাংলা ভাষা একটি ইন্দো-আর্য ভাষা।",
    "ქართული ენა საქართველოს ოფიციალური ენაა.",
    "Հայերեն լեզուն հնդեվրոպական լեզու է:",
    "ኢትዮጵያ አማርኛ ቋንቋ",
    "ᐃᓄᒃᑎᑐᑦ syllabics",
    "Ḽơᶉëᶆ ȋṕšᶙṁ ḍỡḽǭᵳ ʂǐť ӓṁệẗ",
    "Straße, Größe, Übermäßig, façade, naïve, coöperate, résumé",
    "İstanbul ılık IŞIK ışık",
    "Æsir Øresund Ångström œuvre",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝒮𝒸𝓇𝒾𝓅𝓉 ℌ𝔢𝔩𝔩𝔬",
    "𠀀𠀁𠀂 CJK extension B 𪚥 𰻞",
    "ｆｕｌｌｗｉｄｔｈ　ＡＳＣＩＩ　１２３",
    "ﬁ ﬂ ﬀ ligatures ㍿ ㌔ ① ② ⅷ",
    "mixed 中文English日本語한국어العربية",
    "emoji 😀😃😄😁 and text",
    "👨‍👩‍👧‍👦 family, 👩🏽‍💻 technologist, 🏳️‍🌈 flag, 🇯🇵🇺🇸🇩🇪 flags",
    "👍👍🏻👍🏼👍🏽👍🏾👍🏿 skin tones",
    "1️⃣ 2️⃣ #️⃣ keycaps ❤️ ♥️ ☺️",
    "🧑‍🤝‍🧑 🫶🏾 🦄🦄🦄 🐉",
    "e\u0301 vs \u00e9, A\u030a vs \u00c5 vs \u212b, \u1100\u1161\u11a8 jamo",
    "Z̴̢̛̩̗̫͔a̷̧̛̙̰͓l̵̨̙̞g̶̢̛̟̤o̸̦̊ text",
    "o\u0308\u0301 stacked \u0915\u094d\u0937 conjunct",
    "Ω ohm \u2126, K kelvin \u212a, µ micro \u00b5",
    # characters newer than PCRE2's Unicode 14 tables (15.0, 15.1, 16.0, 17.0)
    "a\U00031350b x\U00011F04y \U0001FAE8 \U0001FA77 \U0001FAE9 \U0002EBF0\U0002EBF1",
    "\u1b4e \u1b7f z\u0c5cq \U00010D40\U00010D41 \U00011380\U00011381 \u20c1 a\U00010940b",
    "Nag Mundari \U0001E4D0\U0001E4D1 \U0001E4F0\U0001E4F1 Kawi \U00011F50\U00011F51 digits",
]
for s in scripts:
    add(s)
    add(" " + s)
    add(s.upper())
    add(s + "\n")

# --- code ---------------------------------------------------------------------
code = [
    "def foo(x):\n\treturn x + 1\n",
    "class A:\n    def __init__(self):\n        self.x = {'a': [1, 2, 3]}\n\n    def f(self):\n        if self.x:\n            for i in range(10):\n                while True:\n                    break\n",
    "int main(int argc, char** argv) {\n  std::vector<int> v{1,2,3};\n  for (auto& x : v) { x *= 2; }\n  return 0;\n}\n",
    "\t\t\t\tdeeply\n\t\t\t\t\t\t\t\tindented\n\t\t\t\t\t\t\t\t\t\t\t\t\t\tmore",
    "                                        return nullptr;  // 40 spaces",
    "{\"key\": \"value\", \"list\": [1, 2.5, -3e10, null, true], \"nested\": {\"a\": {}}}",
    "<html><body><div class=\"x\">Hello &amp; goodbye</div></body></html>",
    "SELECT * FROM users WHERE id = 42 AND name LIKE '%o''brien%';",
    "git commit -m \"fix: handle \\r\\n in parser\" && make -j8 2>&1 | tee log.txt",
    "regex = r'^(?:[a-z0-9!#$%&\\'*+/=?^_`{|}~-]+)@example\\.com$'",
    "x=1;y=2;z=x<<y|0xFF&~0b1010^0o777",
    "fn main() { let s: &str = \"héllo\"; println!(\"{s:?}\"); }",
    "    if (a != b && c >= d || !e) {\r\n        return;\r\n    }\r\n",
    "#include <stdio.h>\n#define MAX(a,b) ((a)>(b)?(a):(b))\n",
    "// TODO(someone): ünïcödé in comments — and em-dashes…",
    "$ ls -la /usr/local/bin | grep -E '^-rwx' | awk '{print $9}'",
    "a_b_c __init__ __dunder__ CamelCaseIdentifier snake_case_identifier SCREAMING_CASE",
    "```python\nprint('hi')\n```",
    "- [ ] task\n- [x] done\n> quote\n# Heading\n## Sub",
    "| a | b |\n|---|---|\n| 1 | 2 |",
]
for s in code:
    add(s)

# --- whitespace runs ----------------------------------------------------------
for n in [1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100]:
    add("a" + " " * n + "b")
    add("x" + "\n" * n + "y")
    add(" " * n)
    add("\t" * n + "t")
for n in [1, 2, 3, 10]:
    add("p" + "\r\n" * n + "q")
    add("k" + " \n" * n + "m")
    add("end" + " " * n + "\n" + " " * n + "start")

# --- numbers ------------------------------------------------------------------
for k in range(0, 41):
    add(str(10 ** k))
for k in range(1, 41):
    add("".join(rng.choice("0123456789") for _ in range(k)))
for s in ["3.14159", "-42", "+7", "1,234,567.89", "1e-10", "0x1F", "2024-11-23", "12:34:56",
          "+1 (555) 123-4567", "v1.2.3", "100%", "$1,000,000", "€5,50", "½ ¾ ⅓", "²³¹",
          "١٢٣٤٥", "१२३४", "１２３４５", "๑๒๓", "Ⅳ Ⅻ", "3rd 21st 2nd 11th", "a1b2c3d4e5",
          "1234567890123456789012345678901234567890", "0.000000000001", "007", "12a34b567c8901d"]:
    add(s)
    add("The value is " + s + ".")

# --- contractions ---------------------------------------------------------------
for s in ["I'm", "you're", "they'll", "we'd", "it's", "he's", "she'S", "DON'T", "I'M",
          "We'VE", "can't won't shouldn't", "y'all'd've", "rock 'n' roll", "'tis",
          "O'Reilly's", "it\u2019s curly", "''quoted''", "don't'm", "x's's", "'ll'll"]:
    add(s)
    add("Well, " + s + " fine.")

# --- special tokens written in text ------------------------------------------------
specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>",
            "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>",
            "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
            "<s>", "</s>", "<unk>", "<think>", "</think>", "<tool_call>", "<|fim_prefix|>",
            "<|reserved_special_token_5|>", "<｜place▁holder▁no▁3｜>"]
for t in specials:
    add(t)
    add("Hello " + t + " world")
    add(t + t)
    add("x" + t + "y")
    add(" " + t + "\n")
add("<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n")
add("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>")
add("<｜begin▁of▁sentence｜>You are helpful.<｜User｜>Hi<｜Assistant｜>")
add("<s>[INST] Hello [/INST] Hi</s><s>[INST] again [/INST]")
add("<|im_start <|im_end| <s <|endoftext> partial specials")
add("<<s>> <</s>> <|<|im_end|>|>")

# --- very long words ------------------------------------------------------------
add("a" * 1000)
add("ab" * 700)
add("supercalifragilisticexpialidocious" * 30)
add("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3000)))
add("https://example.com/" + "/".join("".join(rng.choice("abcdefghij0123456789") for _ in range(12)) for _ in range(40)) + "?q=1&r=2#frag")
add("".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(2048)) + "==")
add("的" * 500)
add("".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(1500)))
add("😀" * 300)
add("👨‍👩‍👧‍👦" * 50)
add("ก" * 400)
add("=" * 200)
add("-" * 300 + "\n" + "*" * 300)
add("." * 257)
add("Lorem ipsum dolor sit amet, " * 60)

# --- random mixtures ------------------------------------------------------------
pools = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    "     \t\n",
    ".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`",
    "你好世界中文字符测试数据学习机器人工智能",
    "あいうえおかきくけこアイウエオ",
    "абвгдежзийклмнопрстуфхцчшщъыьэюя",
    "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "अआइईउऊएऐओऔकखगघचछजझ",
    "กขคงจฉชซฌญฎฏฐ",
    "αβγδεζηθικλμνξοπρστυφχψω",
    "😀🎉🔥👍🏽❤️🇯🇵👩‍💻",
    "\u0301\u0308\u0327\u200d\u00a0",
    "éèêëàâäôöûüçñ",
]
for i in range(170):
    n = rng.randint(1, 120)
    k = rng.randint(1, 4)
    chosen = rng.sample(pools, k)
    add("".join(rng.choice(rng.choice(chosen)) for _ in range(n)))
# random words with spaces
words = ["hello", "world", "the", "of", "and", "tokenizer", "数据", "данные", "بيانات",
         "डेटा", "ข้อมูล", "🙂", "123", "4567", "x", "I'm", "don't", "\t", "\n", "  ",
         "<s>", "<|im_end|>", "naïve", "Straße", "a.b", "foo_bar", "C++", "#tag", "@user"]
for i in range(80):
    add(" ".join(rng.choice(words) for _ in range(rng.randint(1, 30))))

for s in lines:
    print(json.dumps(s, ensure_ascii=True))
