"""Deterministic, varied text lines for tokenizer differential tests and benchmarks: several
scripts, emoji (ZWJ sequences, skin tones, flags), digit runs, whitespace runs, code,
contractions, combining marks (NFC-sensitive), and special-token strings."""
import random

WORDS = ("the of and to in is you that it he was for on are as with his they I at be this have from or one had by "
         "word but not what all were we when your can said there use an each which she do how their if will up other "
         "about out many then them these so some her would make like him into time has look two more write go see "
         "number no way could people my than first water been call who oil its now find long down day did get come "
         "made may part").split()
SCRIPTS = [
    "Größe Straße Füße über äöü ÄÖÜ ß", "café naïve résumé coöperate façade", "Привет мир, как дела? ёлка Ёж",
    "Καλημέρα κόσμε, ελληνικά γράμματα", "مرحبا بالعالم، كيف حالك؟", "שלום עולם, מה שלומך?",
    "你好，世界！我想在苹果工作1314151天～", "日本語のテキスト、カタカナとひらがな。", "안녕하세요 세계, 한국어 텍스트",
    "สวัสดีชาวโลก ภาษาไทย", "नमस्ते दुनिया, हिन्दी पाठ", "Cửa Việt, tiếng Việt có dấu", "Ελλάδα ΑΘΗΝΑ",
    "İstanbul ışık ĞÜŞ", "Ærøskøbing Øresund Åland", "ქართული ენა", "Հայերեն լեզու", "ᚠᛇᚻ᛫ᛒᛦᚦ",
]
EMOJI = ["🦙", "🚀", "😶‍🌫️", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷🇯🇵", "✅", "😁", "❤️", "🤗", "🏳️‍🌈", "🧑🏿‍💻", "☕", "🔥🔥🔥"]
COMBINING = ["e\u0301", "a\u0308", "n\u0303", "o\u0302\u0323", "\u1100\u1161\u11a8", "A\u030a", "c\u0327", "i\u0307"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2009", " \t\t ", "\n   \n"]
CODE = [
    "def f(x):\n    return x ** 2  # square", "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "if (a && b || !c) printf(\"%d\\n\", x);", "const x = {a: 1, 'b': [2, 3]};", "SELECT * FROM t WHERE id=42;",
    "<div class=\"x\">Hello &amp; bye</div>", "https://example.com/path?q=1&r=two#frag", "$ ls -la | grep '\\.cpp$'",
    "x_1 = y__2 - z___3", "{\"key\": \"value\", \"n\": 3.14e-10}", "    indented\n\tline", "a=b+c*d/e%f^g",
]
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "<|eot_id|>",
            "<|start_header_id|>", "<s>", "</s>", "[INST]", "[/INST]", "<unk>", "<think>", "</think>"]
CONTRACTIONS = ["I've", "he's", "we'RE", "they'LL", "you'd", "it's", "don't", "'s", "O'Neil", "y'all"]
PUNCT = ["!!!", "?!", "...", "......", "---", "=======", "''''", "```", "\"\"\"", "(", ")", "[]", "{}", "~", "«»", "—", "…"]


def number(rng):
    k = rng.choice([1, 2, 3, 4, 5, 7, 10, 16])
    s = "".join(rng.choice("0123456789") for _ in range(k))
    return rng.choice([s, s + "." + s[:2], "-" + s, s + "%", "3..3", "1,000,000", "0x" + s])


def fragment(rng):
    kind = rng.random()
    if kind < 0.30:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8)))
    if kind < 0.45:
        return rng.choice(SCRIPTS)
    if kind < 0.52:
        return rng.choice(EMOJI)
    if kind < 0.58:
        return number(rng)
    if kind < 0.66:
        return rng.choice(SPACES)
    if kind < 0.74:
        return rng.choice(CODE)
    if kind < 0.79:
        return rng.choice(SPECIALS)
    if kind < 0.85:
        return rng.choice(CONTRACTIONS)
    if kind < 0.90:
        return rng.choice(COMBINING)
    if kind < 0.95:
        return rng.choice(PUNCT)
    return rng.choice(WORDS).upper()


def lines(n, seed=0):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = [fragment(rng) for _ in range(rng.randint(1, 6))]
        sep = rng.choice(["", " ", " ", "", "\n"])
        text = sep.join(parts)
        if rng.random() < 0.1:
            text = " " + text
        if rng.random() < 0.05:
            text = text + rng.choice(SPACES)
        out.append(text)
    return out
