"""Deterministic generator of tokenizer test strings (seeded; same seed, same strings).

  gen_strings.py --seed N --count N [--model tokenizer.model] [--long N] OUT

OUT gets records of [u32 little-endian byte length][UTF-8 bytes]. Categories: ASCII
prose, math reasoning with LaTeX, CJK and fullwidth text, emoji (ZWJ sequences, skin
tones, flags), code, runs of spaces/tabs/newlines, control characters, rare code points
(byte fallback), strings that spell special tokens, random vocabulary pieces of the
model (stresses the merge order), long strings, the empty string, and mixes."""
import argparse
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spm_model  # noqa: E402

WORDS = ("the of and to in is that for it as with was on be by this are from at or an "
         "which we have not can all if its one there their has more also two when solution "
         "step answer value equation triangle angle area circle radius number integer prime "
         "function derivative integral limit matrix vector probability therefore thus since "
         "because let suppose given find compute total each sum product square root half "
         "Question Solution Process correct incorrect assistant user system image figure "
         "shown below above cos sin tan log exp sqrt frac pi theta alpha beta gamma delta "
         "sentence tokenizer piece merge score Hello World OpenAI InternLM VisualPRM "
         "don't it's we'll can't I'm résumé naïve café façade Straße Ångström").split()
PUNCT = list(".,;:!?()[]{}'\"-+*/=<>_@#$%^&|~`\\")
LATEX = [r"\frac{%d}{%d}", r"\sqrt{%d}", r"x^{%d}", r"\cdot", r"\times", r"\leq", r"\geq",
         r"\neq", r"\pi", r"\theta", r"\alpha", r"\angle ABC", r"\triangle", r"\sum_{i=1}^{%d}",
         r"\int_0^{%d}", r"\left(", r"\right)", r"\begin{aligned}", r"\end{aligned}", r"\\",
         r"&=", r"\text{cm}^2", r"\boxed{%d}", r"\mathbb{R}", r"\log_{%d}", r"\overline{AB}",
         r"\sin 30^\circ", r"\dfrac{\sqrt{3}}{2}", r"\{", r"\}", r"\%"]
CODE = ["def f(x):\n    return x * 2\n", "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}\n",
        "if __name__ == '__main__':\n    main()\n", "#include <stdio.h>\n",
        "    x = [1, 2, 3]  # list\n", "\t\treturn -1;\n", "SELECT * FROM t WHERE id=42;",
        "const s = `${a}+${b}`;", "  ", "\n\n", "}\n\n", "=> {", "!= null && ", "<|>", "::"]
SPECIALS = ["<|im_end|>", "<|im_start|>", "<s>", "</s>", "<unk>", "<pad>", "<IMG_CONTEXT>",
            "<img>", "</img>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>",
            "<|plugin|>", "<|interpreter|>", "<|action_end|>", "<|action_start|>", "<0x41>",
            "<0x0A>", "[UNUSED_TOKEN_0]", "[UNUSED_TOKEN_141]", "[UNUSED_TOKEN_145]",
            "[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_147]", "\u2581", "\u2581\u2581the", "<image>",
            "assistant\n+", "assistant\n-", "<|im_start|>assistant\n+<|im_end|>\n",
            "### Question:\n", "\n\n### Solution Process:\n", "ＥＦＧ", "——", "……", "ａｂｃ"]
WHITES = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r",
          " \n", "\n ", " \t ", "\u00a0", "\u3000", "\u2003", "\u2009", "\u200b", "\ufeff",
          "\u2028", "\x0b", "\x0c"]
EMOJI_BASE = ["\U0001F600", "\U0001F602", "\U0001F44D", "\U0001F680", "\u2764\ufe0f",
              "\U0001F914", "\u2705", "\u274c", "\U0001F4AF", "\U0001F9EE", "\u2b50"]
ZWJ = ["\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466",
       "\U0001F469\U0001F3FD\u200d\U0001F4BB", "\U0001F3F3\ufe0f\u200d\U0001F308",
       "\U0001F9D1\U0001F3FF\u200d\U0001F91D\u200d\U0001F9D1\U0001F3FB",
       "\U0001F1EF\U0001F1F5", "\U0001F1FA\U0001F1F8", "\U0001F44B\U0001F3FC",
       "1\ufe0f\u20e3", "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F"]
CJK_TEXT = ["因此，三角形的面积是", "解：设", "所以答案为", "步骤", "我们可以得到", "正确",
            "これは数学の問題です。", "カタカナ", "한국어 문장입니다", "《数学》", "“引号”",
            "（括号）", "【注意】", "第一步：", "；", "、", "——", "……", "～", "¥100"]


def rand_char(rng, lo, hi):
    while True:
        c = rng.randint(lo, hi)
        if not 0xD800 <= c < 0xE000:
            return chr(c)


def prose(rng, n=None):
    n = n or rng.randint(1, 40)
    out = []
    for i in range(n):
        w = rng.choice(WORDS)
        if rng.random() < 0.1:
            w = w.capitalize()
        if rng.random() < 0.05:
            w = w.upper()
        out.append(w)
        if rng.random() < 0.15:
            out[-1] += rng.choice(PUNCT)
    return " ".join(out)


def number(rng):
    k = rng.random()
    if k < 0.3:
        return str(rng.randint(0, 10 ** rng.randint(1, 12)))
    if k < 0.6:
        return "%.*f" % (rng.randint(1, 6), rng.uniform(-1000, 1000))
    if k < 0.8:
        return "%d/%d" % (rng.randint(1, 99), rng.randint(1, 99))
    return "%de%d" % (rng.randint(1, 9), rng.randint(-10, 10))


def latex(rng):
    parts = []
    for _ in range(rng.randint(1, 12)):
        t = rng.choice(LATEX)
        n = t.count("%d")
        parts.append(t % tuple(rng.randint(0, 999) for _ in range(n)) if n else t)
        if rng.random() < 0.4:
            parts.append(rng.choice(["x", "y", "+", "-", "=", " = ", "2", number(rng), " ", "(",
                                     ")", "^2", "_1"]))
    s = "".join(parts) if rng.random() < 0.5 else " ".join(parts)
    return rng.choice(["$%s$", "$$%s$$", "\\(%s\\)", "\\[%s\\]", "%s"]) % s


def math_step(rng):
    return ("Step %d: %s %s, so %s. %s" % (rng.randint(1, 20), prose(rng, rng.randint(3, 15)),
                                           latex(rng), latex(rng), prose(rng, 5)))


def cjk(rng):
    out = []
    for _ in range(rng.randint(1, 20)):
        k = rng.random()
        if k < 0.3:
            out.append(rng.choice(CJK_TEXT))
        elif k < 0.6:
            out.append(rand_char(rng, 0x4E00, 0x9FFF))
        elif k < 0.7:
            out.append(rand_char(rng, 0x3040, 0x30FF))
        elif k < 0.78:
            out.append(rand_char(rng, 0xAC00, 0xD7A3))
        elif k < 0.88:
            out.append(rand_char(rng, 0xFF01, 0xFF5E))  # fullwidth (user-defined in InternLM2)
        elif k < 0.93:
            out.append(rand_char(rng, 0x3400, 0x4DBF))  # extension A: rarer
        else:
            out.append(rand_char(rng, 0x20000, 0x2A6DF))  # extension B: byte fallback
    return "".join(out)


def emoji(rng):
    out = []
    for _ in range(rng.randint(1, 10)):
        k = rng.random()
        if k < 0.4:
            out.append(rng.choice(ZWJ))
        elif k < 0.7:
            out.append(rng.choice(EMOJI_BASE))
        elif k < 0.85:
            out.append(rand_char(rng, 0x1F300, 0x1FAFF))
        else:
            out.append(rng.choice([" ", "!", "ok", prose(rng, 2)]))
    return "".join(out)


def code(rng):
    return "".join(rng.choice(CODE + [prose(rng, 2), " " * rng.randint(1, 12)])
                   for _ in range(rng.randint(1, 10)))


def whitespace(rng):
    out = []
    for _ in range(rng.randint(1, 15)):
        k = rng.random()
        if k < 0.5:
            out.append(rng.choice(WHITES) * rng.randint(1, 5))
        elif k < 0.6:
            out.append(" " * rng.randint(1, 40))
        else:
            out.append(rng.choice(WORDS))
    return "".join(out)


def controls(rng):
    out = []
    for _ in range(rng.randint(1, 20)):
        k = rng.random()
        if k < 0.5:
            out.append(chr(rng.randint(0, 0x1F)))
        elif k < 0.6:
            out.append("\x7f")
        elif k < 0.75:
            out.append(chr(rng.randint(0x80, 0x9F)))
        else:
            out.append(rng.choice(WORDS))
    return "".join(out)


def rare(rng):
    out = []
    for _ in range(rng.randint(1, 12)):
        k = rng.random()
        if k < 0.25:
            out.append(rand_char(rng, 0x80, 0xFFFF))
        elif k < 0.45:
            out.append(rand_char(rng, 0x10000, 0x10FFFF))
        elif k < 0.55:
            out.append(rng.choice(["\ufffd", "\uffff", "\ufffe", "\U0010ffff", "\U000f0000",
                                   "\ue000", "\u0300", "e\u0301", "\u00ad", "\u202e", "\u2581"]))
        elif k < 0.7:
            out.append(rand_char(rng, 0x0300, 0x036F))  # combining marks
        else:
            out.append(rng.choice(WORDS) + rng.choice(["", " "]))
    return "".join(out)


def specials(rng):
    out = []
    for _ in range(rng.randint(1, 6)):
        out.append(rng.choice(SPECIALS))
        if rng.random() < 0.5:
            out.append(rng.choice(["", " ", "\n", "x", prose(rng, 2), "<", ">", "|"]))
    return "".join(out)


def repeated(rng):
    unit = rng.choice(["a", " ", "\n", "\t", "=", "-", "+", "0", "1", "ab", "的", "——", "\u2581",
                       "😀", "ﬁ", ".", "_", "*", "\\", "aaa ", "12", "Ｅ"])
    return unit * rng.randint(2, 300)


def vocab_pieces(rng, pieces):
    out = []
    for _ in range(rng.randint(1, 30)):
        out.append(rng.choice(pieces))
    s = "".join(out)
    return s.replace("\u2581", " ") if rng.random() < 0.7 else s


def mixed(rng, gens):
    return "".join(rng.choice(gens)(rng) for _ in range(rng.randint(2, 6)))


def long_string(rng, gens, size):
    parts, n = [], 0
    k = rng.random()
    if k < 0.2:  # one repeated character: the merge queue's worst case
        return rng.choice(["a", " ", "0", "\n", "的"]) * size
    if k < 0.35:  # no spaces at all
        while n < size:
            parts.append(rng.choice(WORDS))
            n += len(parts[-1])
        return "".join(parts)
    while n < size:
        parts.append(rng.choice(gens)(rng))
        n += len(parts[-1])
    return "\n\n".join(parts)


def generate(seed, count, pieces, n_long, long_size):
    rng = random.Random(seed)
    gens = [prose, latex, math_step, cjk, emoji, code, whitespace, controls, rare, specials,
            repeated, lambda r: number(r)]
    if pieces:
        gens.append(lambda r: vocab_pieces(r, pieces))
    out = ["", " ", "  ", "\n", "a", "assistant\n+", "assistant\n-", " assistant\n+",
           "<|im_end|>", "<s>", "[UNUSED_TOKEN_145]", "\u2581", "+", "-", "\n\n"]
    for i in range(n_long):
        out.append(long_string(rng, gens, rng.randint(long_size // 4, long_size)))
    while len(out) < count:
        g = rng.random()
        out.append(mixed(rng, gens) if g < 0.25 else rng.choice(gens)(rng))
    return out[:count]


def write_records(path, strings):
    with open(path, "wb") as f:
        for s in strings:
            b = s.encode("utf-8")
            f.write(struct.pack("<I", len(b)))
            f.write(b)


def read_records(path):
    with open(path, "rb") as f:
        data = f.read()
    out, i = [], 0
    while i < len(data):
        (n,) = struct.unpack_from("<I", data, i)
        out.append(data[i + 4:i + 4 + n].decode("utf-8"))
        i += 4 + n
    return out


def is_utf8(text):
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:  # undecodable bytes kept as surrogate escapes
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--model", help="take random pieces of this tokenizer.model too")
    ap.add_argument("--long", type=int, default=20, help="how many long strings")
    ap.add_argument("--long-size", type=int, default=60000, help="bytes of the longest")
    ap.add_argument("out")
    a = ap.parse_args()
    pieces = []
    if a.model:
        pieces = [t for t, _, typ in spm_model.Model.load(a.model).pieces()
                  if typ in (spm_model.NORMAL, spm_model.USER_DEFINED) and is_utf8(t)]
    strings = generate(a.seed, a.count, pieces, a.long, a.long_size)
    write_records(a.out, strings)


if __name__ == "__main__":
    main()
