"""Build the gold judge's general word lists: alignlab/gym/assets/wordlist_{en,fr}.txt.gz.

The judge calls an answer word salad when too many of its words are neither the world's, the request's, nor words of
English or French. These lists are the 40,000 most frequent words of each language in wordfreq 3.1.1 (Robyn Speer,
data CC BY-SA 4.0; see alignlab/gym/assets/NOTICE), split into letter runs as the judge splits text.
Run once where wordfreq is installed (it is not a dependency of alignlab):  pip install wordfreq==3.1.1
    python scripts/build_wordlists.py
"""

import gzip
import re
from pathlib import Path

import wordfreq

OUT = Path(__file__).resolve().parents[1] / "alignlab" / "gym" / "assets"
WORD = re.compile(r"[^\W\d_]+")

for lang in ("en", "fr"):
    parts = sorted({p for w in wordfreq.top_n_list(lang, 40000) for p in WORD.findall(w.lower())})
    with gzip.open(OUT / f"wordlist_{lang}.txt.gz", "wt", encoding="utf-8", compresslevel=9) as f:
        f.write("\n".join(parts) + "\n")
    print(lang, len(parts))
