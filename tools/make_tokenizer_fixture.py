#!/usr/bin/env python3
"""Makes tests/data/tokenizer/: a small GPT-2-format byte-level BPE vocabulary (vocab.json, merges.txt; OPT's
special tokens <s> <pad> </s> <unk> as ids 0-3) trained with the PyPI `tokenizers` package on the repository's
Markdown files, and cases.tsv: what HF transformers' GPT2Tokenizer - configured as OPT's (bos = eos = </s>,
BOS added, no clean-up of spaces) - makes of a varied set of texts, and of random id sequences. flexrt's
tokenizer (text/gpt2_tokenizer.hpp) must give the same ids and the same text. The files are committed; CI
needs no Python. Run from the repository root: python3 tools/make_tokenizer_fixture.py

cases.tsv, one case a line, fields split by tabs, text as hex of its UTF-8 bytes:
  encode <text> <ids with BOS> <decode(ids)> <decode(ids, skip_special_tokens)>
  decode <ids> <decode(ids)>
"""
import glob
import os
import random

from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Tokenizer

OUT = "tests/data/tokenizer"
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]

TEXTS = [
    "Hello world", "Hello  world", "   leading spaces", "trailing spaces   ", "tabs\tand\nnewlines\r\n", "\n\n\n", "",
    " ", "a    b     c", "ends with a newline\n", "\t \t ", "numbers 12345 3.14159 1,000,000 and 2024-11-24",
    "digits of other scripts: \u0663\u0664\u0665 \u0967\u0968 and \u216b",
    "contractions: I'm, you're, it's, we'll, they've, he'd, don't; upper: IT'S WE'LL 'S",
    "\u00fcn\u00efc\u00f6d\u00e9 caf\u00e9 na\u00efve r\u00e9sum\u00e9", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8", "emoji \U0001F600\U0001F44D\U0001F3FD family \U0001F468\u200d\U0001F469\u200d\U0001F467",
    "combining e\u0301 a\u0308 o\u0302", "RTL \u05e2\u05d1\u05e8\u05d9\u05ea \u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "symbols !@#$%^&*()_+-=[]{}|;:'\",.<>/?`~", "very long word " + "supercalifragilisticexpialidocious" * 20,
    "a" * 1000, "mixed\u00a0no-break space and\u3000ideographic space", "special tokens: </s> inside, <pad>, <s> and <unk>",
    "Hello</s>world", "code: def f(x):\n    return x ** 2\n", "URL https://example.com/path?q=1&r=2#frag",
    "quotes \u201csmart\u201d \u2018single\u2019 and \u00abguillemets\u00bb", "math \u2211 \u222b \u221e \u2264 \u2260 \u03c0",
    "line\u2028separator and\u0085next line", "a \u0085b, x\u2028 y, z \u00a0w, \u1680v \u2000u \u205ft \u3000s",
    "controls \x1c\x1d\x1e\x1f and \x00 \x07 \x7f", "The quick brown fox jumps over the lazy dog. " * 5,
]


def hexs(s):
    return s.encode("utf-8").hex()


def main():
    os.makedirs(OUT, exist_ok=True)
    corpus = sorted(glob.glob("**/*.md", recursive=True))
    trainer = ByteLevelBPETokenizer()
    trainer.train(files=corpus, vocab_size=2000, min_frequency=2, special_tokens=SPECIALS)
    trainer.save_model(OUT)
    tok = GPT2Tokenizer(f"{OUT}/vocab.json", f"{OUT}/merges.txt", bos_token="</s>", eos_token="</s>", unk_token="<unk>",
                        pad_token="<pad>", add_bos_token=True, clean_up_tokenization_spaces=False)
    lines = []
    for t in TEXTS:
        ids = tok(t)["input_ids"]
        lines.append("\t".join(["encode", hexs(t), " ".join(map(str, ids)), hexs(tok.decode(ids)),
                                hexs(tok.decode(ids, skip_special_tokens=True))]))
    rng = random.Random(7)
    for n in (1, 2, 3, 5, 8, 13, 40):  # random ids: partial UTF-8 sequences decode to U+FFFD as HF does
        ids = [rng.randrange(len(tok)) for _ in range(n)]
        lines.append("\t".join(["decode", " ".join(map(str, ids)), hexs(tok.decode(ids))]))
    with open(f"{OUT}/cases.tsv", "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(lines)} cases, vocabulary {len(tok)}")


if __name__ == "__main__":
    main()
