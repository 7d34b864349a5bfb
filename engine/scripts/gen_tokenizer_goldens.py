#!/usr/bin/env python3
"""Golden files for the UMT5 tokenizer front-end (prompt cleaning + tokenization).

Wan2.1 encodes prompts with HF `google/umt5-xxl` (a SentencePiece unigram model, loaded by
transformers from its tokenizer.json) after cleaning them with ftfy + html.unescape + whitespace
collapsing. The real tokenizer (a 256k vocabulary, several MB) cannot be fetched here, so this
script trains a *small real* SentencePiece unigram model the way T5's was made (pad 0, eos 1,
unk 2, no bos, nmt_nfkc normalization; byte_fallback on, believed but not verified here to
match umT5's spiece.model, and only the slow path sees it), converts it to a tokenizer.json
exactly the way transformers converts T5's spiece.model, and records reference ids for
prompts that exercise every part of the pipeline.

Writes to engine/tests/goldens/:
  tokenizer/spiece.model            the trained SentencePiece model (vocab 1000)
  tokenizer/tokenizer.json          transformers' conversion (Precompiled normalizer,
                                    WhitespaceSplit + Metaspace pre-tokenizer, Unigram,
                                    TemplateProcessing appending </s>)
  tokenizer/tokenizer_config.json   as save_pretrained writes it
  tokenizer/cases.json              [{prompt, cleaned, ids, length}] — ids as Wan computes them:
                                    tokenizer(cleaned, padding='max_length', truncation=True,
                                    max_length=512, add_special_tokens=True), pads dropped.
                                    Cases where SentencePiece itself (the slow path) differs
                                    carry "sp_ids" and "sp_differs": the fast tokenizer has no
                                    byte fallback (transformers' T5 conversion drops it), so a
                                    character outside the vocabulary is <unk> (2) there and
                                    <0xNN> byte pieces in SentencePiece. Wan uses the fast one.
  prompt_clean_cases.json           [{input, output}] for Wan's prompt cleaning
                                    (ftfy.fix_text defaults, html.unescape twice, strip,
                                    re.sub(r'\\s+', ' '), strip). A case the Rust port cannot
                                    match would be kept and marked {"ftfy_heuristic": true};
                                    none is.

Run (CPU, a few seconds):
  pip install ftfy transformers tokenizers sentencepiece protobuf
  python3 engine/scripts/gen_tokenizer_goldens.py
Made with Python 3.11.7, ftfy 6.3.1, transformers 5.24.0, tokenizers 0.23.3, sentencepiece 0.2.3,
protobuf 7.36.2. The corpus includes Python stdlib docstrings, so another Python version may
train a slightly different model: regenerate every file together.
"""

import html
import importlib
import inspect
import json
import os
import random
import re
import shutil
import sys
import tempfile

import ftfy
import sentencepiece as spm
from transformers import AutoTokenizer, T5Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDENS = os.path.join(HERE, "..", "tests", "goldens")
TOK_DIR = os.path.join(GOLDENS, "tokenizer")
SEED = 20261127
VOCAB_SIZE = 1000
MAX_LENGTH = 512


# --------------------------------------------------------------------------------------------
# Wan's prompt cleaning (wan/modules/tokenizers.py, clean='whitespace'), verbatim.
# --------------------------------------------------------------------------------------------


def basic_clean(text):
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    return text.strip()


def whitespace_clean(text):
    text = re.sub(r"\s+", " ", text)
    text = text.strip()
    return text


def wan_clean(text):
    return whitespace_clean(basic_clean(text))


# --------------------------------------------------------------------------------------------
# Training corpus: stdlib docstrings + generated video prompts.
# --------------------------------------------------------------------------------------------

STDLIB_MODULES = [
    "abc", "argparse", "ast", "base64", "bisect", "calendar", "cmd", "codecs", "collections",
    "colorsys", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib",
    "email.message", "enum", "fnmatch", "fractions", "functools", "getopt", "gettext", "glob",
    "gzip", "heapq", "hmac", "html.parser", "http.client", "imaplib", "inspect", "ipaddress",
    "json", "logging", "mailbox", "mimetypes", "numbers", "operator", "optparse", "pathlib",
    "pickle", "pprint", "queue", "random", "re", "sched", "secrets", "shlex", "shutil",
    "smtplib", "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap",
    "threading", "timeit", "tokenize", "traceback", "typing", "unittest.case", "urllib.parse",
    "uuid", "warnings", "weakref", "zipfile",
]


def stdlib_docstring_lines():
    lines = []
    for name in STDLIB_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        docs = [inspect.getdoc(mod) or ""]
        for attr in sorted(vars(mod)):
            if attr.startswith("_"):
                continue
            obj = getattr(mod, attr)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(
                obj, "__module__", None
            ) == mod.__name__:
                docs.append(inspect.getdoc(obj) or "")
        for doc in docs:
            for line in doc.splitlines():
                line = line.strip()
                if len(line) >= 20:
                    lines.append(line)
    return lines


SUBJECTS = [
    "a red fox", "an old fisherman", "a golden retriever", "two astronauts", "a paper boat",
    "a hummingbird", "a steam locomotive", "a ballet dancer", "a neon robot", "a snow leopard",
    "a child with a kite", "a vintage car", "a jellyfish", "a samurai", "a hot air balloon",
]
ACTIONS = [
    "runs through", "drifts across", "dances in", "glides over", "walks slowly along",
    "leaps above", "spins around", "rests beside", "races through", "floats above",
]
PLACES = [
    "a snowy forest", "a crowded night market", "the surface of the moon", "a quiet harbor",
    "a field of sunflowers", "a rainy city street", "an underwater coral reef", "a desert canyon",
    "a misty mountain lake", "a futuristic megacity", "a candle-lit library", "a bamboo grove",
]
STYLES = [
    "cinematic lighting", "shot on 35mm film", "soft golden hour light", "4k, highly detailed",
    "slow motion", "aerial drone shot", "shallow depth of field", "vibrant colors",
    "volumetric fog", "studio ghibli style", "hyperrealistic", "wide angle lens",
    "tracking shot", "dramatic backlight", "pastel palette",
]
ACCENTED = [
    "Un café crème sur une terrasse à Paris, façade ancienne, ambiance élégante.",
    "Über den Dächern von Zürich fliegt ein Vogel über die Straße.",
    "El niño juega en la playa de España con un jalapeño y una piña.",
    "A crème brûlée on a plate in São Paulo, naïve décor, señor.",
    "Ο ήλιος δύει πάνω από τη θάλασσα.",
    "Кошка бежит по снегу в зимнем лесу.",
    "Sjøen er stille, og båten glir forbi fjellet.",
    "Gdańsk nocą, światła odbijają się w wodzie.",
]
ZH = [
    "一只可爱的小猫在草地上奔跑", "夕阳下的城市街道", "电影感镜头", "高清画质", "慢动作",
    "一个女孩在雨中跳舞", "山上的雪和蓝色的天空", "海边的灯塔", "夜晚的霓虹灯", "古老的寺庙",
    "红色的花在风中摇动", "一条小船在湖上", "森林里的鹿", "城市的天际线", "温暖的阳光",
]
JA = [
    "さくらのはながまう", "カメラがゆっくりとパンする", "東京の夜景", "猫が窓のそばで眠っている",
    "雨の中を歩く女の子", "山の上の古いお寺", "海辺で遊ぶ子供たち", "アニメ風のイラスト",
]
KO = ["서울의 밤거리", "눈 내리는 숲", "바다 위의 배"]
AR = ["قطة صغيرة تلعب في الحديقة", "غروب الشمس فوق البحر", "مدينة في الليل"]
EMOJI = ["🎬", "🌅", "🐱", "🚀", "✨", "🔥", "🌊", "🎉", "😀", "❤️"]
SYMBOLS = [
    "Tom & Jerry", "$42.00", "~5 seconds", "2^10 frames", "a — dash", "© 2024 studio",
    "R&D lab ®", "brand™", "€10 or £5 or ¥300", "wait… what", "50% off!", "#hashtag @user",
    "[draft] {scene} <tag> |cut|", "x * y = z + 1", "path/to/file\\name", "`code`", "'quoted'",
    '"double"', "a;b:c", "½ cup, 3°C",
]


def generated_prompts(rng):
    out = []
    for _ in range(600):
        s = f"{rng.choice(SUBJECTS)} {rng.choice(ACTIONS)} {rng.choice(PLACES)}"
        s = s[0].upper() + s[1:]
        s += ", " + ", ".join(rng.sample(STYLES, 2)) + "."
        r = rng.random()
        if r < 0.15:
            s += " " + rng.choice(EMOJI)
        elif r < 0.25:
            s = f"“{s}”"
        elif r < 0.3:
            s += f" ({rng.randint(1, 60)} fps, {rng.choice(['16:9', '9:16', '1:1'])})"
        out.append(s)
    for _ in range(400):
        out.append(rng.choice(ACCENTED))
    for _ in range(300):
        out.append(" ".join(rng.sample(SYMBOLS, 3)) + " " + rng.choice(EMOJI))
    for _ in range(250):
        out.append("，".join(rng.sample(ZH, 3)) + "。")
    for _ in range(150):
        out.append("、".join(rng.sample(JA, 2)) + "。")
    for _ in range(40):
        out.append(rng.choice(KO) + " " + rng.choice(EMOJI))
    for _ in range(60):
        out.append(rng.choice(AR) + "، " + rng.choice(AR))
    # Every printable ASCII character stays in the vocabulary, as in the real umt5 model.
    ascii_line = "".join(chr(c) for c in range(0x21, 0x7F))
    out += [ascii_line] * 50
    rng.shuffle(out)
    return out


def train_model(workdir):
    rng = random.Random(SEED)
    corpus = stdlib_docstring_lines() + generated_prompts(rng)
    corpus_path = os.path.join(workdir, "corpus.txt")
    with open(corpus_path, "w", encoding="utf-8") as f:
        for line in corpus:
            f.write(line.replace("\n", " ") + "\n")
    spm.set_random_generator_seed(SEED)
    # Relative names: the trainer spec stored in the model records them, and a temporary
    # directory's name would make every run's spiece.model different.
    cwd = os.getcwd()
    os.chdir(workdir)
    spm.SentencePieceTrainer.train(
        input="corpus.txt",
        model_prefix="spiece",
        model_type="unigram",
        vocab_size=VOCAB_SIZE,
        pad_id=0,
        pad_piece="<pad>",
        eos_id=1,
        eos_piece="</s>",
        unk_id=2,
        unk_piece="<unk>",
        bos_id=-1,
        normalization_rule_name="nmt_nfkc",
        byte_fallback=True,
        character_coverage=0.9995,
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    os.chdir(cwd)
    return os.path.join(workdir, "spiece.model"), len(corpus)


# --------------------------------------------------------------------------------------------
# Tokenizer cases.
# --------------------------------------------------------------------------------------------

LONG_EN = (
    "The camera opens on a vast desert at dawn. A lone rider on a black horse crosses the dunes "
    "while the wind lifts ribbons of sand into the pale orange sky. Slowly the shot pushes in on "
    "the rider's weathered face, the brim of a wide hat casting a sharp shadow over tired eyes. "
    "Far behind, the ruins of an ancient city appear through the haze, columns broken and half "
    "buried, banners of faded silk still moving in the breeze. "
)


def tokenizer_prompts(tok):
    prompts = [
        "A cinematic shot of a red fox running through a snowy forest at dawn, soft golden light, 4k.",
        "Two astronauts walk slowly across the surface of the moon, Earth rising in the background.",
        "Close-up of a cup of coffee with steam rising, shallow depth of field, 35mm film grain",
        "Un café crème sur une terrasse à Paris, façade ancienne, ambiance naïve et élégante.",
        "Über den Dächern von Zürich; el niño juega en la playa de España con un jalapeño.",
        "一只可爱的小猫在阳光下的草地上奔跑，电影感，高清。",
        "さくらのはながまう。カメラがゆっくりとパンする。東京の夜景",
        "A dancing robot 🤖 at a neon party 🎉✨ with fireworks 🎆 and a cat 🐱",
        "قطة صغيرة تلعب في الحديقة، غروب الشمس فوق البحر",
        "Tom &amp; Jerry &lt;b&gt;chase&lt;/b&gt; a &quot;big&quot; cheese &#39;wheel&#39; &#x1F600;",
        "&nbsp;Sunset&nbsp;&nbsp;over the sea &amp;amp; sky, &copy; studio",
        "\t  A boat\n\n on   the\tlake \u3000 at night\u00a0\u00a0 \r\n",
        "\u201cThe last light,\u201d she said, \u2018is always gold\u2019.",
        "The \ufb01nal \ufb02ight of a butter\ufb02y, \ufb00 \ufb03",
        "ＡＢＣ１２３ ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ！",
        "Cafe\u0301 de\u0301ja\u0300 vu, an\u0303o nuevo, Zu\u0308rich",
        "The ancient script ꙮ and 𓂀, Devanagari नमस्ते, Tamil தமிழ், Thai ภาษาไทย",
        "cafÃ© au lait with â€œfoamâ€\x9d art, Ã¼ber cool",
        "Frame 0001-2048 @ 24fps; ratio 16:9 (1920x1080) — 3.14159% ~ $42.00!!! ??? #tag",
        "",
        "   \n\t  ",
        "Use <b>bold</b> &amp; <i>italics</i> &lt;3",
        "\x1b[31mRed alert\x1b[0m: lights flash\x07 across the\x00 bridge\ufeff",
        "서울의 밤거리, Ελληνικά και русский текст, 🌊🌊🌊",
        "Mixed: A neon robot dances in 夜晚的霓虹灯 with さくら and émotions 😀!",
    ]
    # Long prompts: one far past 512 tokens, one of CJK + English past 512.
    prompts.append(LONG_EN * 8)
    prompts.append(("海边的灯塔，夜晚的霓虹灯，" + LONG_EN) * 5)
    # Boundary prompts: the shortest run of words whose ids reach exactly 511 (no truncation,
    # </s> is the 512th id) and exactly 512 (one token cut, </s> replaces it).
    words = (LONG_EN * 10).split(" ")
    for target in (MAX_LENGTH - 1, MAX_LENGTH):
        found = None
        for n in range(1, len(words)):
            text = " ".join(words[:n])
            count = len(tok(text, add_special_tokens=False)["input_ids"])
            if count == target:
                found = text
                break
            if count > target:
                # Trim characters from the end until the count matches, if it can.
                for cut in range(len(text), 0, -1):
                    c = len(tok(text[:cut], add_special_tokens=False)["input_ids"])
                    if c == target:
                        found = text[:cut]
                        break
                    if c < target:
                        break
                break
        assert found is not None, f"no prompt with exactly {target} tokens"
        prompts.append(found)
    return prompts


def byte_fallback_explains(fast_ids, sp_ids, sp):
    """True when the only difference is SentencePiece byte pieces where fast has one <unk>."""
    i = j = 0
    while i < len(fast_ids) and j < len(sp_ids):
        if fast_ids[i] == sp_ids[j]:
            i += 1
            j += 1
            continue
        if fast_ids[i] != 2 or not sp.is_byte(sp_ids[j]):
            return False
        while j < len(sp_ids) and sp.is_byte(sp_ids[j]):
            j += 1
        i += 1
    # Truncation can cut either list at a different place; the tail beyond 511 is irrelevant.
    return (i == len(fast_ids) and j == len(sp_ids)) or i >= MAX_LENGTH - 1 or j >= MAX_LENGTH - 1


def tokenizer_cases(tok, sp):
    cases = []
    disagreements = []
    for prompt in tokenizer_prompts(tok):
        cleaned = wan_clean(prompt)
        enc = tok(
            cleaned,
            padding="max_length",
            truncation=True,
            max_length=MAX_LENGTH,
            add_special_tokens=True,
        )
        ids = enc["input_ids"]
        mask = enc["attention_mask"]
        assert len(ids) == MAX_LENGTH
        n = sum(mask)
        assert all(m == 1 for m in mask[:n]) and all(i == 0 for i in ids[n:])
        ids = ids[:n]
        assert ids[-1] == 1
        sp_ids = sp.encode(cleaned)[: MAX_LENGTH - 1] + [1]
        case = {"prompt": prompt, "cleaned": cleaned, "ids": ids, "length": n}
        if sp_ids != ids:
            explained = byte_fallback_explains(ids, sp_ids, sp)
            disagreements.append((prompt, explained))
            assert explained, f"slow/fast disagree beyond byte fallback on {prompt!r}"
            case["sp_ids"] = sp_ids
            case["sp_differs"] = "byte_fallback"
        cases.append(case)
    lengths = [c["length"] for c in cases]
    assert len(cases) >= 24
    assert sum(1 for c in cases if c["length"] == MAX_LENGTH) >= 2
    assert MAX_LENGTH in lengths
    return cases, disagreements


# --------------------------------------------------------------------------------------------
# Prompt-cleaning cases.
# (input, ftfy_heuristic): ftfy_heuristic marks inputs whose output the Rust port cannot
# match without more of ftfy than it has; the Rust test skips them and counts them. The port
# now covers every fixer fix_text runs by default, so no case is marked.
# --------------------------------------------------------------------------------------------

CLEAN_INPUTS = [
    # ordinary prompts: unchanged
    ("A cinematic shot of a red fox running through a snowy forest at dawn.", False),
    ("Two astronauts walk slowly across the surface of the moon, 4k, highly detailed", False),
    ("Un café crème à Paris, façade ancienne, naïve élégance.", False),
    ("一只可爱的小猫在阳光下的草地上奔跑，电影感，高清。", False),
    ("さくらのはながまう。カメラがゆっくりとパンする。", False),
    ("A dancing robot 🤖 at a neon party 🎉✨", False),
    ("قطة صغيرة تلعب في الحديقة", False),
    ("Frame 0001-2048 @ 24fps; ratio 16:9 (1920x1080) — 3.14159% ~ $42.00!", False),
    ("Ελληνικά και русский текст, Zürich, São Paulo, Gdańsk", False),
    ("Prices: £5, €10, ¥300, ±2°C, 50µm, ½ cup, © 2024, ® ™", False),
    ("Señor Ñandú, ¿qué tal? ¡Olé! «Bonjour» — ‹oui›", False),
    ("", False),
    # whitespace and Python's \s
    ("   leading and trailing   ", False),
    ("tabs\tand\nnewlines\r\nand\rcarriage returns", False),
    ("runs    of     spaces", False),
    ("ideographic\u3000space and no\u00a0break\u00a0space", False),
    ("line\u2028separator and paragraph\u2029separator and next\u0085line", False),
    ("\x1c\x1d\x1e\x1f file/group/record/unit separators\x1c", False),
    ("zero\u200bwidth space stays, as does word\u2060joiner", False),
    ("en\u2002em\u2003thin\u2009hair\u200anarrow\u202fmath\u205fogham\u1680end", False),
    ("vertical\x0btab and form\x0cfeed", False),
    # HTML entities (ftfy unescapes when there is no '<'; html.unescape twice always)
    ("Tom &amp; Jerry", False),
    ("&lt;b&gt;bold&lt;/b&gt;", False),
    ("She said &quot;hi&quot; and &#39;bye&#39;", False),
    ("smile &#x1F600; and &#128512; twice", False),
    ("non&nbsp;breaking&nbsp;&nbsp;spaces", False),
    ("double &amp;amp; escaped &amp;lt;tag&amp;gt;", False),
    ("triple &amp;amp;amp; escaped", False),
    ("Use <b>bold</b> &amp; <i>italics</i>", False),
    ("a < b &amp;&amp; c &gt; d", False),
    ("line one &amp; two\nline <three> &amp; four\nline five &amp; six", False),
    ("&Eacute;cole and P&EACUTE;REZ and BUNDESSTRA&SZLIG;E", False),
    ("&ntilde; &Ntilde; &NTILDE; &nTILDE;", False),
    ("&AMP; &LT; &GT; &QUOT; &COPY; &REG;", False),
    ("&hellip; &mdash; &ndash; &lsquo;x&rsquo; &ldquo;y&rdquo;", False),
    ("&Jscr;ohn &HilbertSpace;ancock &checkmark; &fjlig;", False),
    # numeric references with odd code points
    ("null &#0; and &#x0; end", False),
    ("C1 &#128; &#x80; &#150; &#x9F; &#129;", False),
    ("too big &#x110000; and &#99999999999999999999; end", False),
    ("surrogate &#xD800; &#55296; end", False),
    ("noncharacters &#65534; &#xFFFF; &#xFDD0; &#x1FFFF; end", False),
    ("controls &#1; &#x0B; &#x7F; &#13; &#9; end", False),
    ("no semicolon &#65 &#x41 &#x41x end", False),
    # entities without semicolons (html.unescape legacy prefixes)
    ("fish &amp chips and &copy2020 and &notit; and &ampersand", False),
    ("&lt3 &gtx &AMPx &quotxyz &nbspx", False),
    ("unknown &foo; &bar &; & alone &#; &#x; &#xZ;", False),
    ("long &abcdefghijklmnopqrstuvwxyzabcdefghijklmnop; name", False),
    ("&acE; &NotEqualTilde; &bne; multi-char entities", False),
    # terminal escapes
    ("\x1b[31mRed\x1b[0m alert", False),
    ("\x1b[1;32;40mbold green\x1b[m done\x1b[K", False),
    ("bare escape \x1b and \x1b[ unfinished", False),
    # mojibake: UTF-8 read as cp1252 / latin-1
    ("cafÃ© au lait", False),
    ("â€œquotesâ€\x9d", False),
    ("Ã¼ber cool", False),
    ("The Mona Lisa doesnâ€™t have eyebrows.", False),
    ("voilÃ le travail", False),
    ("sÃ£o paulo and ZÃ¼rich at night", False),
    ("â€” an em dash and â€¦ an ellipsis", False),
    ("emoji mojibake ðŸ˜€ here", False),
    ("CJK mojibake æ—¥æœ¬èªž", False),
    ("Ã\xa0 la mode", False),
    ("Ã la mode", False),
    ("mojibake with emoji cafÃ© 😀", False),
    ("naïve café next to mojibake cafÃ©", False),
    ("РџСЂРёРІРµС‚ РјРёСЂ (UTF-8 read as Windows-1251)", False),
    ("caf├⌐ au lait (UTF-8 read as cp437)", False),
    ("√¢¬Ä¬úquoted√¢¬Ä¬ù (UTF-8 read as MacRoman)", False),
    ("GdaĹ\x84sk (UTF-8 read as Windows-1250)", False),
    ("í\xa0½í¸\x80 CESU-8 emoji read as latin-1", False),
    ("Ð¡Ð½ÐµÐ³ Ð¸ Ð»ÐµÑ\x81", False),
    ("lossy â€œquotesâ€\ufffd here", False),
    ("legit: Ã© typed on purpose?", False),
    # C1 controls (treated as windows-1252)
    ("\x93smart quotes\x94 and \x85 ellipsis", False),
    ("\x80 euro \x96 dash \x81 undefined", False),
    # ligatures
    ("The \ufb01nal \ufb02ight of a butter\ufb02y", False),
    ("\ufb00 \ufb03 \ufb04 \ufb05 \ufb06 \u0132 \u0133 \u01c4 \u01c5 \u01c6 \u01c7 \u01ca \u0149", False),
    ("æ œ ß are kept", False),
    # character width
    ("ＡＢＣ１２３ ｆｕｌｌｗｉｄｔｈ！", False),
    ("ＬＯＵＤ\u3000ＮＯＩＳＥＳ", False),
    ("halfwidth ｶﾀｶﾅ ﾊﾟﾝ and Ｕﾀｰﾝ", False),
    ("fullwidth symbols ￠￡￥￦ and halfwidth ￩￪", False),
    ("fullwidth tilde ～ and brackets ［］｛｝", False),
    # curly quotes
    ("\u201cdouble\u201d \u201edeutsch\u201f", False),
    ("\u2018single\u2019 \u201alow\u201b and it\u2019s \u02bcokina", False),
    ("angle quotes «» ‹› are kept", False),
    # control characters
    ("bell\x07 null\x00 backspace\x08 delete\x7f", False),
    ("\ufeffbyte order mark and \ufeff inside", False),
    ("deprecated \u206a\u206b\u206c\u206d\u206e\u206f format", False),
    ("annotation \ufff9a\ufffab\ufffb and object \ufffc", False),
    ("shift\x0e\x0fout \x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b", False),
    ("joiners kept: a\u200cb\u200dc \u200e\u200f \u202a\u202e", False),
    # NFC
    ("Cafe\u0301 de\u0301ja\u0300 vu, an\u0303o", False),
    ("Zu\u0308rich and A\u030a and \u1100\u1161\u11a8", False),
    ("already NFC: é ü ñ Å 각", False),
    ("\u212b angstrom and \u2126 ohm", False),
    # unknown / rare characters
    ("ꙮ 𓂀 नमस्ते தமிழ் ภาษาไทย", False),
    ("private use \ue000 and replacement \ufffd char", False),
    # digits and punctuation
    ("!!! ??? ... --- ___ *** ### @@@ $$$ %%% ^^^ &&& |||", False),
    ("1,234,567.89 and 10^6 and 3/4 and 1e-9", False),
]


def clean_cases():
    cases = []
    for text, heuristic in CLEAN_INPUTS:
        case = {"input": text, "output": wan_clean(text)}
        if heuristic:
            case["ftfy_heuristic"] = True
        cases.append(case)
    assert len(cases) >= 60
    return cases


def main():
    os.makedirs(TOK_DIR, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        model_path, n_lines = train_model(work)
        src = os.path.join(work, "src")
        os.makedirs(src)
        shutil.copy(model_path, os.path.join(src, "spiece.model"))
        t5 = T5Tokenizer.from_pretrained(src, extra_ids=0)
        out = os.path.join(work, "out")
        t5.save_pretrained(out)
        for name in sorted(os.listdir(TOK_DIR)):
            os.remove(os.path.join(TOK_DIR, name))
        shutil.copy(model_path, os.path.join(TOK_DIR, "spiece.model"))
        for name in sorted(os.listdir(out)):
            shutil.copy(os.path.join(out, name), os.path.join(TOK_DIR, name))

    tok = AutoTokenizer.from_pretrained(TOK_DIR)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(TOK_DIR, "spiece.model"))
    assert sp.get_piece_size() == VOCAB_SIZE and len(tok) == VOCAB_SIZE
    assert (sp.pad_id(), sp.eos_id(), sp.unk_id(), sp.bos_id()) == (0, 1, 2, -1)

    cases, disagreements = tokenizer_cases(tok, sp)
    with open(os.path.join(TOK_DIR, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
        f.write("\n")
    clean = clean_cases()
    with open(os.path.join(GOLDENS, "prompt_clean_cases.json"), "w", encoding="utf-8") as f:
        json.dump(clean, f, ensure_ascii=False, indent=1)
        f.write("\n")

    print(f"corpus lines: {n_lines}")
    print(f"tokenizer cases: {len(cases)}; lengths: {[c['length'] for c in cases]}")
    print(f"slow/fast disagreements (all byte fallback): {len(disagreements)}")
    for prompt, _ in disagreements:
        print(f"  {prompt[:70]!r}")
    print(f"clean cases: {len(clean)} ({sum(1 for c in clean if c.get('ftfy_heuristic'))} heuristic)")
    for name in sorted(os.listdir(TOK_DIR)):
        print(f"  {name}: {os.path.getsize(os.path.join(TOK_DIR, name))} bytes")
    print(f"python {sys.version.split()[0]}, ftfy {ftfy.__version__}")


if __name__ == "__main__":
    main()
