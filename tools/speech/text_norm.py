"""Text normalisation for speech: numbers, times, years, abbreviations, unsupported characters,
sentence splitting.

`prepare_line(text)` returns the sentences a TTS engine should speak (joined by the engine with a
short pause); `line_problems(text)` lists why a screenplay line cannot be spoken at all, for the
input validator.
"""
from __future__ import annotations

import logging
import re
import unicodedata

from tools.base import ToolError

LOG = logging.getLogger(__name__)
MAX_SENTENCE_WORDS = 30  # longer sentences are split at a comma/semicolon so the TTS keeps its pace

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen " \
        "sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand")]
_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                      "nine": "ninth", "twelve": "twelfth"}

# Abbreviations that always expand the same way (Dr. and St. depend on context, see _expand_abbrev).
_ABBREV = {
    "mr.": "Mister", "mrs.": "Missus", "ms.": "Miz", "prof.": "Professor", "capt.": "Captain",
    "lt.": "Lieutenant", "col.": "Colonel", "gen.": "General", "sgt.": "Sergeant", "cmdr.": "Commander",
    "jr.": "Junior", "sr.": "Senior", "vs.": "versus", "etc.": "et cetera", "e.g.": "for example",
    "i.e.": "that is", "approx.": "approximately", "mt.": "Mount", "ft.": "feet", "no.": "number",
}


def number_words(n: int) -> str:
    """Cardinal number in words: 1984 -> 'one thousand nine hundred eighty-four'."""
    if n < 0:
        return "minus " + number_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("-" + _ONES[n % 10] if n % 10 else "")
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + (" " + number_words(rest) if rest else "")
    for value, name in _SCALES:
        if n >= value:
            rest = n % value
            return number_words(n // value) + " " + name + (" " + number_words(rest) if rest else "")
    raise ValueError(n)


def year_words(n: int) -> str:
    """Years read in pairs: 1984 -> 'nineteen eighty-four', 1900 -> 'nineteen hundred', 2005 -> 'two
    thousand five'."""
    if 2000 <= n <= 2009 or n % 1000 == 0:
        return number_words(n)
    hi, lo = divmod(n, 100)
    if lo == 0:
        return number_words(hi) + " hundred"
    return number_words(hi) + " " + ("oh " + _ONES[lo] if lo < 10 else number_words(lo))


def ordinal_words(n: int) -> str:
    """1 -> 'first', 22 -> 'twenty-second'."""
    words = number_words(n)
    head, sep, last = words.rpartition("-") if "-" in words.split()[-1] else words.rpartition(" ")
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def _time_words(m: re.Match) -> str:
    h, mnt = int(m.group(1)), int(m.group(2))
    suffix = m.group(3)
    if mnt == 0:
        out = number_words(h) + ("" if suffix else " o'clock")
    elif mnt < 10:
        out = number_words(h) + " oh " + number_words(mnt)
    else:
        out = number_words(h) + " " + number_words(mnt)
    if suffix:
        out += " " + " ".join(suffix.replace(".", "").upper())
    return out


def _number_token(m: re.Match) -> str:
    raw = m.group(0)
    digits = raw.replace(",", "")
    if "." in digits:
        whole, frac = digits.split(".", 1)
        return number_words(int(whole or 0)) + " point " + " ".join(_ONES[int(d)] for d in frac)
    n = int(digits)
    if "," not in raw and len(digits) == 4 and 1100 <= n <= 2099:
        return year_words(n)
    return number_words(n)


def _place(full: str):
    """Expansion of a place abbreviation; keeps its period only where it also ended the sentence."""
    return lambda m: m.group(1) + " " + full + ("." if m.group(2) is not None else "")


def _expand_abbrev(text: str) -> str:
    # After a capitalised word Dr./St. are places (Elm Dr., Main St.) unless a name follows; before
    # a capitalised name they are titles (Dr. Hopper, St. Louis).
    for abbr, full in (("Dr", "Drive"), ("St", "Street")):
        text = re.sub(r"\b([A-Z][a-z]+) " + abbr + r"\.(?=(\s+[A-Z\"]|\s*$))?", _place(full), text)
    text = re.sub(r"\bDr\.", "Doctor", text)
    text = re.sub(r"\bSt\.", "Saint", text)
    for abbr, full in _ABBREV.items():
        text = re.sub(r"(?<![\w.])" + re.escape(abbr) + r"(?=\s|$)", full, text, flags=re.IGNORECASE)
    return text


def _money(m: re.Match) -> str:
    dollars = int(m.group(1).replace(",", ""))
    out = number_words(dollars) + (" dollar" if dollars == 1 else " dollars")
    cents = int((m.group(2) or "0").ljust(2, "0")[:2])
    if cents:
        out += " and " + number_words(cents) + (" cent" if cents == 1 else " cents")
    return out


def _remove_unsupported(text: str) -> str:
    """Drop emoji and other symbols a TTS cannot pronounce, with a warning naming them."""
    kept, dropped = [], []
    for ch in unicodedata.normalize("NFKC", text):
        cat = unicodedata.category(ch)
        if cat in ("So", "Sk", "Cs", "Co", "Cn") or (cat == "Cf" and ch != "\u00ad") or cat == "Cc" and ch not in "\t\n":
            dropped.append(ch)
        else:
            kept.append(ch)
    if dropped:
        LOG.warning("removed characters that cannot be spoken: %s", " ".join(sorted({repr(c) for c in dropped})))
    return "".join(kept)


def normalize(text: str) -> str:
    """Spoken form of a line: unsupported characters removed, abbreviations, times, numbers,
    percentages and currency written out, whitespace collapsed."""
    text = _remove_unsupported(text)
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = _expand_abbrev(text)
    text = re.sub(r"\b(\d{1,2}):(\d{2})\s*([AaPp]\.?[Mm]\.?)?", _time_words, text)
    text = re.sub(r"\$(\d[\d,]*)(?:\.(\d+))?", _money, text)
    text = re.sub(r"(\d[\d,]*(?:\.\d+)?)\s*%", lambda m: _number_token(re.match(r".+", m.group(1))) + " percent", text)
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: ordinal_words(int(m.group(1))), text)
    text = re.sub(r"(?<![\d.])-(?=\d)", "minus ", text)
    text = re.sub(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?", _number_token, text)
    text = text.replace("&", " and ")
    return re.sub(r"\s+", " ", text).strip()


def split_sentences(text: str) -> list[str]:
    """Sentences at . ! ? (after normalisation, so abbreviations no longer end in a period); very long
    sentences are cut at their last comma or semicolon before MAX_SENTENCE_WORDS."""
    parts = [p.strip() for p in re.split(r"(?<=[.!?…])[\"')\]]*\s+", text) if p.strip()]
    out = []
    for p in parts:
        while len(p.split()) > MAX_SENTENCE_WORDS:
            words = p.split()
            cut = max((i for i, w in enumerate(words[:MAX_SENTENCE_WORDS]) if w.endswith((",", ";", ":"))), default=None)
            cut = cut + 1 if cut else MAX_SENTENCE_WORDS
            out.append(" ".join(words[:cut]).rstrip(",;:") + ".")
            p = " ".join(words[cut:])
        if p:
            out.append(p)
    return out


def line_problems(text: str) -> list[str]:
    """Why a line cannot be spoken: empty, or nothing pronounceable (punctuation or emoji only)."""
    if not text or not text.strip():
        return ["the line is empty"]
    if not re.search(r"\w", _remove_unsupported(text)):
        return [f"the line {text.strip()!r} has no words to speak (only punctuation or symbols)"]
    return []


def prepare_line(text: str, where: str = "line") -> list[str]:
    """Normalised sentences of one line; ToolError naming `where` if nothing can be spoken."""
    problems = line_problems(text)
    if problems:
        raise ToolError(f"{where}: {problems[0]}", "give the line at least one word to speak")
    return split_sentences(normalize(text))
