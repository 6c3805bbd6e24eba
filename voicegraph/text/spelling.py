"""Text → text an engine can read aloud: numbers, dates, symbols as words.

Runs on each sentence the chunker found, before it packs them, so every
engine says "$3.50" or "Dr." the same way. Pure functions, no Ray. English
gets every rule; any other language only has its numbers spelt out, by
num2words, where num2words knows the language.

English style, chosen once so that output is predictable:
- number words are num2words' "en" ones: "one hundred and first".
- dates are always "November twenty-first, twenty twenty-six", whatever order
  they were written in; all-numeric d/m/y dates are month first for "en" and
  "en-us" and day first for other en-* (whichever order is a real date wins).
- times are read as written: "14:45" → "fourteen forty-five", "7:00" →
  "seven o'clock", "3:30pm" → "three thirty p m".
- units use British spelling (kilometre, litre) and are plural unless the
  number is exactly "1".
- "St." is "Saint" before a capitalised word, "Street" otherwise; "Elm St.
  Then…" is misread as "Saint", judged rarer than "Mount Street Helens".
- digit runs of 7+ digits, or with a leading zero, are codes: read digit by
  digit, as are phone numbers.

Each rule is a `read_*` function from text to text; `spell_out`
applies them in order, addresses first so their digits are not taken for
dates, and plain numbers last so that every earlier rule sees its digits.
The rules also take a `Spoken`, the text as said so far with, for each of
its characters, the written characters it says: `normalize_with_spans`
is `spell_out` keeping that account, so word timestamps can be shown on
the words as written ("7:45" on "seven forty-five").
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from typing import NamedTuple, TypeVar

from num2words import CONVERTER_CLASSES, num2words

from voicegraph.text.language import canonical_language

_ENGLISH = "en"
# Nobody says a longer number as words, and int() refuses very long digit strings.
_MAX_WORDED_DIGITS = 30

# A written number: plain or with thousands commas, maybe with a decimal part.
_NUMBER = r"(?<![0-9])(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.[0-9]+)?"
# A sign only at the start of a token: "COVID-19" and "5-3" have none.
_SIGN = r"(?:(?<![\w.,])(?P<sign>[-+\u2212]))?"
_SIGN_WORDS = {"-": "minus", "\u2212": "minus", "+": "plus"}
# An abbreviation's period is dropped unless it also ends the sentence.
_ABBREVIATION_DOT = r"(?:\.(?!\s*$|\s+[A-Z])|(?=\.))"


# --- Saying numbers -------------------------------------------------------


def _num2words(number: int, language: str, to: str = "cardinal") -> str | None:
    try:
        return num2words(number, lang=language, to=to)
    # num2words' languages each fail their own way on numbers too big for
    # them (OverflowError, IndexError, ...): the caller has a fallback.
    except Exception:  # noqa: BLE001
        return None


@cache
def _digit_word(digit: str, language: str) -> str:
    return _num2words(int(digit), language) or digit


def _digits(digits: str, language: str = _ENGLISH) -> str:
    """"5551234" → "five five five one two three four"."""
    return " ".join(_digit_word(digit, language) for digit in digits)


def _words(digits: str, language: str = _ENGLISH, to: str = "cardinal") -> str:
    """An unsigned integer in words, or digit by digit where num2words can't."""
    said = _num2words(int(digits), language, to) if len(digits) <= _MAX_WORDED_DIGITS else None
    return said or _digits(digits, language)


def _reads_as_code(digits: str) -> bool:
    # Long runs and leading zeros are identifiers (phones, accounts, "007").
    return len(digits) >= 7 or (len(digits) > 1 and digits[0] == "0")


def _integer(digits: str, language: str = _ENGLISH) -> str:
    return _digits(digits, language) if _reads_as_code(digits) else _words(digits, language)


def _count(digits: str, one: str, many: str) -> str:
    return f"{_words(digits)} {one if digits == '1' else many}"


def _amount(number: str) -> str:
    """A `_NUMBER` as a quantity: "1,234.5" → "one thousand, … point five"."""
    whole, _, fraction = number.partition(".")
    words = _words(whole.replace(",", ""))
    return f"{words} point {_digits(fraction)}" if fraction else words


def _signed(sign: str | None, words: str) -> str:
    return f"{_SIGN_WORDS[sign]} {words}" if sign else words


def _is_year(digits: str) -> bool:
    return len(digits) == 4 and 1100 <= int(digits) <= 2099


def _year(digits: str) -> str:
    return _words(digits, to="year")


def _pluralise(words: str) -> str:
    """"nineteen ninety" → "nineteen nineties"."""
    if words.endswith("y"):
        return words[:-1] + "ies"
    return words + ("es" if words.endswith("x") else "s")


def _match_case(written: str, expansion: str) -> str:
    return expansion[0].upper() + expansion[1:] if written[:1].isupper() else expansion


# --- Applying a rule ------------------------------------------------------

# A span [start, end) of the written text.
Span = tuple[int, int]


@dataclass(frozen=True)
class Spoken:
    """`written` as said so far (`text`), and for each character of `text`
    the span of `written` it says; None for a space a rule put between words."""

    written: str
    text: str
    sources: tuple[Span | None, ...]

    @classmethod
    def of(cls, written: str) -> Spoken:
        return cls(written, written, tuple(zip(range(len(written)), range(1, len(written) + 1))))

    def source(self, start: int, end: int) -> Span | None:
        """The written span that text[start:end] says, None if it says none."""
        spans = [span for span in self.sources[start:end] if span is not None]
        return (min(s for s, _ in spans), max(e for _, e in spans)) if spans else None


# What a rule says for a match: words for all of it, or in parts, each the
# words for one span of the matched text (in `match.string`), so a match over
# several written words ("7:45 a.m.") says which words each part reads.
Reading = str | Sequence[tuple[str, Span]]
_Text = TypeVar("_Text", str, Spoken)


def _substitute(pattern: re.Pattern[str], read: Callable[[re.Match[str]], Reading | None], text: _Text) -> _Text:
    """Replace each match by what read says, or leave it where read says None;
    with a space where the words would touch a letter or digit."""
    spoken = Spoken.of(text) if isinstance(text, str) else text
    said: list[str] = []
    sources: list[Span | None] = []

    def say(words: str, source: Span | None) -> None:
        said.append(words)
        sources.extend([source] * len(words))

    done = 0
    for match in pattern.finditer(spoken.text):
        reading = read(match)
        if reading is None:
            continue
        start, end = match.span()
        said.append(spoken.text[done:start])
        sources.extend(spoken.sources[done:start])
        if start > 0 and spoken.text[start - 1].isalnum():
            say(" ", None)
        parts = [(reading, (start, end))] if isinstance(reading, str) else reading
        for index, (words, span) in enumerate(parts):
            if index:
                say(" ", None)
            say(words, spoken.source(*span))
        if end < len(spoken.text) and spoken.text[end].isalnum():
            say(" ", None)
        done = end
    if not said:
        return text
    said.append(spoken.text[done:])
    sources.extend(spoken.sources[done:])
    result = Spoken(spoken.written, "".join(said), tuple(sources))
    return result.text if isinstance(text, str) else result


# --- Addresses ------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL_BODY = r"""[^\s<>"]*[^\s<>"'.,;:!?)\]]"""  # never ends in sentence punctuation
_TLDS = "com|org|net|edu|gov|io|co|uk|us|eu|de|fr|dev|ai|app"
_URL = re.compile(
    rf"(?<![\w@./-])(?:(?:https?|ftp)://{_URL_BODY}|www\.{_URL_BODY}"
    # A bare domain only with a common top-level domain, so "e.g." or "Node.js" stay.
    rf"|(?:[a-z0-9-]+\.)+(?:{_TLDS})(?![\w-]|\.\w)(?:[/?#](?:{_URL_BODY})?)?)"
)
_SCHEME = re.compile(r"^(?:[a-z]+://)?(?:www\.)?", re.IGNORECASE)
_ADDRESS_PART = re.compile(r"[0-9]+|[^\w\s]|_")
_ADDRESS_SYMBOLS = {
    ".": "dot", "/": "slash", "@": "at", "-": "dash", "_": "underscore", ":": "colon",
    "?": "question mark", "=": "equals", "&": "and", "#": "hash", "+": "plus",
    "~": "tilde", "%": "percent",
}


def _address_part(part: str) -> str:
    return _integer(part) if part[0] in "0123456789" else _ADDRESS_SYMBOLS.get(part, part)


def _address(match: re.Match[str]) -> str:
    """"https://www.example.com/docs" → "example dot com slash docs"."""
    bare = _SCHEME.sub("", match[0]).rstrip("/")
    spoken = _ADDRESS_PART.sub(lambda part: f" {_address_part(part[0])} ", bare)
    return " ".join(spoken.split())


def read_emails(text: _Text) -> _Text:
    return _substitute(_EMAIL, _address, text)


def read_urls(text: _Text) -> _Text:
    return _substitute(_URL, _address, text)


# --- Dates and times ------------------------------------------------------

_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December",
)
_MONTH_NUMBERS = {
    **{name: number for number, name in enumerate(_MONTHS, 1)},
    **{name[:3]: number for number, name in enumerate(_MONTHS, 1)},
    "Sept": 9,
}
_MONTH = "|".join(sorted(_MONTH_NUMBERS, key=len, reverse=True))
_DAY = r"(?P<day>[0-9]{1,2})(?:st|nd|rd|th)?"
_YEAR_AFTER = r"(?:,?\s+(?P<year>[0-9]{4})(?![0-9]))?"
_ISO_DATE = re.compile(r"(?<![\w.-])(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})(?![0-9-])")
_NUMERIC_DATE = re.compile(
    r"(?<![\w./-])(?P<first>[0-9]{1,2})/(?P<second>[0-9]{1,2})/(?P<year>[0-9]{4})(?![0-9/]|\.[0-9])"
)
_MONTH_DAY = re.compile(
    rf"\b(?P<month>{_MONTH})\b{_ABBREVIATION_DOT}?\s+{_DAY}{_YEAR_AFTER}(?![\w:]|[.,][0-9])"
)
# "the 21st of November" drops its "the" to come out in the one date style.
_DAY_MONTH = re.compile(
    rf"(?:(?<!\w)[Tt]he\s+|(?<![\w.,:/-])){_DAY}\s+(?:of\s+)?"
    rf"(?P<month>{_MONTH})\b{_ABBREVIATION_DOT}?{_YEAR_AFTER}"
)
_AM_PM = rf"(?:\s?(?P<half>[AaPp])\.?\s?[Mm]\b{_ABBREVIATION_DOT}?)"
_CLOCK = re.compile(
    r"(?<![\w:.])(?P<hour>[01]?[0-9]|2[0-3]):(?P<minute>[0-5][0-9])(?::(?P<second>[0-5][0-9]))?"
    rf"(?![0-9]|:[0-9]){_AM_PM}?"
)
_HOUR = re.compile(rf"(?<![\w:.])(?P<hour>1[0-2]|0?[1-9]){_AM_PM}")


def _date(year: str | None, month: int, day: str) -> list[str] | None:
    """Month, day and year as said, ["November", "twenty-first,", "twenty
    twenty-six"] (no year: two), or None for no such day."""
    try:
        # 2000 is a leap year: "29 February" without a year is a real day.
        datetime.date(int(year) if year else 2000, month, int(day))
    except ValueError:
        return None
    said = [_MONTHS[month - 1], _words(day, to="ordinal")]
    return [said[0], f"{said[1]},", _year(year)] if year else said


def _plain_numbers(*parts: str) -> str:
    return " ".join(_integer(part) for part in parts)


def _iso_date(match: re.Match[str]) -> str:
    year, month, day = match["year"], match["month"], match["day"]
    date = _date(year, int(month), day)
    return " ".join(date) if date else _plain_numbers(year, month, day)


def _numeric_date(match: re.Match[str], month_first: bool) -> str:
    first, second, year = match["first"], match["second"], match["year"]
    month, day = (first, second) if month_first else (second, first)
    date = _date(year, int(month), day) or _date(year, int(day), month)
    return " ".join(date) if date else _plain_numbers(first, second, year)


def _named_month_date(match: re.Match[str]) -> Reading | None:
    date = _date(match["year"], _MONTH_NUMBERS[match["month"]], match["day"])
    if date is None:
        return None  # an impossible day ("May 45") is left for the plain-number rule
    return list(zip(date, (match.span("month"), match.span("day"), match.span("year"))))


def _time(match: re.Match[str]) -> Reading:
    """A `_CLOCK` or `_HOUR`: the clock ("seven forty-five"), then the half of
    the day ("a m") from the written word it reads."""
    fields = match.groupdict()
    minute, second, half = fields.get("minute") or "00", fields.get("second"), fields["half"]
    words = [_words(fields["hour"])]
    if minute == "00":
        if not half:
            words.append("o'clock")
    elif minute[0] == "0":
        words += ["oh", _words(minute)]
    else:
        words.append(_words(minute))
    if second and second != "00":
        words += ["and", _count(second.lstrip("0"), "second", "seconds")]
    if not half:
        return " ".join(words)
    clock_end = max(match.end(field) for field in ("hour", "minute", "second") if fields.get(field))
    return [(" ".join(words), (match.start(), clock_end)), (f"{half.lower()} m", (match.start("half"), match.end()))]


def read_iso_dates(text: _Text) -> _Text:
    return _substitute(_ISO_DATE, _iso_date, text)


def read_numeric_dates(text: _Text, month_first: bool = True) -> _Text:
    return _substitute(_NUMERIC_DATE, partial(_numeric_date, month_first=month_first), text)


def read_month_dates(text: _Text) -> _Text:
    text = _substitute(_MONTH_DAY, _named_month_date, text)
    return _substitute(_DAY_MONTH, _named_month_date, text)


def read_times(text: _Text) -> _Text:
    text = _substitute(_CLOCK, _time, text)
    return _substitute(_HOUR, _time, text)


# --- Phone numbers and slashes --------------------------------------------

_PHONE = re.compile(
    r"(?<![\w.+-])(?:(?:\+[0-9]{1,3}|1)[-. ])?"
    r"(?:\([0-9]{3}\) ?[0-9]{3}-|[0-9]{3}(?P<separator>[-.])[0-9]{3}(?P=separator)|[0-9]{3}-)"
    r"[0-9]{4}(?![\w-]|\.[0-9])"
)
_DIGIT_GROUP = re.compile(r"[0-9]+")
_SLASHED = re.compile(
    r"(?<![\w./-])(?:(?P<whole>[0-9]+) )?(?P<top>[0-9]{1,4})/(?P<bottom>[0-9]{1,4})(?![\w/]|[.,][0-9])"
)
# Only denominators people say as fractions: "9/11" and "24/7" are not fractions.
_FRACTIONS = {
    2: ("half", "halves"), 3: ("third", "thirds"), 4: ("quarter", "quarters"), 8: ("eighth", "eighths"),
}


def _phone(match: re.Match[str]) -> Reading | None:
    groups = list(_DIGIT_GROUP.finditer(match.string, match.start(), match.end()))
    # "100-2000" is a range: phone numbers are seldom both round.
    if len(groups) == 2 and all(group[0].endswith("0") for group in groups):
        return None
    said = [(f"{_digits(group[0])},", group.span()) for group in groups]
    said[-1] = (said[-1][0].removesuffix(","), said[-1][1])
    if match[0].startswith("+"):
        said.insert(0, ("plus", (match.start(), match.start() + 1)))
    return said


def _slashed(match: re.Match[str]) -> Reading:
    """"3/4" → "three quarters", "24/7" → "twenty-four seven"."""
    whole, top, bottom = match["whole"], match["top"], match["bottom"]
    names = _FRACTIONS.get(int(bottom))
    if names and int(top) < int(bottom):
        said = f"{_words(top)} {names[0] if int(top) == 1 else names[1]}"
        whole_said = f"{_integer(whole)} and" if whole else ""
    else:
        said = f"{_integer(top)} {_integer(bottom)}"
        whole_said = _integer(whole) if whole else ""
    if not whole:
        return said
    return [(whole_said, match.span("whole")), (said, (match.start("top"), match.end()))]


def read_phone_numbers(text: _Text) -> _Text:
    return _substitute(_PHONE, _phone, text)


def read_slashed_numbers(text: _Text) -> _Text:
    return _substitute(_SLASHED, _slashed, text)


# --- Money, percentages, ordinals, units ----------------------------------


class _Currency(NamedTuple):
    one: str
    many: str
    minor_one: str | None
    minor_many: str | None


_CURRENCIES = {
    "$": _Currency("dollar", "dollars", "cent", "cents"),
    "£": _Currency("pound", "pounds", "penny", "pence"),
    "€": _Currency("euro", "euros", "cent", "cents"),
    "¥": _Currency("yen", "yen", None, None),
}
_SCALES = {
    "thousand": "thousand", "k": "thousand", "K": "thousand",
    "million": "million", "m": "million", "M": "million", "mn": "million",
    "billion": "billion", "bn": "billion", "B": "billion",
    "trillion": "trillion", "tn": "trillion", "T": "trillion",
}
_MONEY = re.compile(
    rf"{_SIGN}(?P<symbol>[$£€¥])\s?(?:(?P<low>{_NUMBER})[-\u2013](?P=symbol)?)?(?P<amount>{_NUMBER})"
    r"(?:(?:\s?(?P<scale>thousand|million|billion|trillion)|(?P<short>mn|bn|tn|[kKmMBT]))(?!\w))?"
)
_RANGE_START = rf"(?:(?P<low>{_NUMBER})[-\u2013])?"
_PERCENT = re.compile(rf"{_SIGN}{_RANGE_START}(?P<number>{_NUMBER})\s?%")
_ORDINAL = re.compile(r"(?<![\w.,])(?P<number>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?i:st|nd|rd|th)(?!\w)")
_UNITS = {
    "km/h": ("kilometre per hour", "kilometres per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "m/s": ("metre per second", "metres per second"),
    "km": ("kilometre", "kilometres"),
    "m": ("metre", "metres"),
    "cm": ("centimetre", "centimetres"),
    "mm": ("millimetre", "millimetres"),
    "ft": ("foot", "feet"),
    "kg": ("kilogram", "kilograms"),
    "g": ("gram", "grams"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "l": ("litre", "litres"),
    "L": ("litre", "litres"),
    "ml": ("millilitre", "millilitres"),
    "mL": ("millilitre", "millilitres"),
    "°C": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
    "KB": ("kilobyte", "kilobytes"),
    "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "TB": ("terabyte", "terabytes"),
    "Hz": ("hertz", "hertz"),
    "kHz": ("kilohertz", "kilohertz"),
    "MHz": ("megahertz", "megahertz"),
    "GHz": ("gigahertz", "gigahertz"),
}
_UNIT_NAMES = "|".join(re.escape(unit) for unit in sorted(_UNITS, key=len, reverse=True))
_UNIT = re.compile(rf"{_SIGN}{_RANGE_START}(?P<number>{_NUMBER})\s?(?P<unit>{_UNIT_NAMES})(?![\w/])")


def _money_words(currency: _Currency, amount: str, scale: str | None) -> str:
    """"3.50" → "three dollars and fifty cents", "2.5" million → "two point five million dollars"."""
    if scale:
        return f"{_amount(amount)} {scale} {currency.many}"
    whole, _, fraction = amount.partition(".")
    whole = whole.replace(",", "").lstrip("0") or "0"
    if not fraction:
        return _count(whole, currency.one, currency.many)
    if currency.minor_one is None or currency.minor_many is None or len(fraction) > 2:
        return f"{_amount(amount)} {currency.many}"
    minor = str(int(fraction.ljust(2, "0")))
    major_said = _count(whole, currency.one, currency.many)
    minor_said = _count(minor, currency.minor_one, currency.minor_many)
    if minor == "0":
        return major_said
    if whole == "0":
        return minor_said
    return f"{major_said} and {minor_said}"


def _money(match: re.Match[str]) -> str:
    currency, low = _CURRENCIES[match["symbol"]], match["low"]
    scale = match["scale"] or _SCALES.get(match["short"] or "")
    said = _money_words(currency, match["amount"], scale)
    if low:
        # "$5-$10" → "five to ten dollars"; with cents both ends need their units.
        low_said = _money_words(currency, low, scale) if "." in low else _amount(low)
        said = f"{low_said} to {said}"
    return _signed(match["sign"], said)


def _quantity(match: re.Match[str]) -> str:
    """The number of a percentage or measure, "ten to twenty" for a range."""
    said = _amount(match["number"])
    if match["low"]:
        said = f"{_amount(match['low'])} to {said}"
    return _signed(match["sign"], said)


def _measure(match: re.Match[str]) -> Reading:
    one, many = _UNITS[match["unit"]]
    singular = match["number"] == "1" and not match["low"]
    return [(_quantity(match), (match.start(), match.end("number"))), (one if singular else many, match.span("unit"))]


def _percentage(match: re.Match[str]) -> Reading:
    return [(_quantity(match), (match.start(), match.end("number"))), ("percent", (match.end("number"), match.end()))]


def read_money(text: _Text) -> _Text:
    return _substitute(_MONEY, _money, text)


def read_percentages(text: _Text) -> _Text:
    return _substitute(_PERCENT, _percentage, text)


def read_ordinals(text: _Text) -> _Text:
    return _substitute(_ORDINAL, lambda m: _words(m["number"].replace(",", ""), to="ordinal"), text)


def read_units(text: _Text) -> _Text:
    return _substitute(_UNIT, _measure, text)


# --- Number signs, ranges, years, plain numbers ---------------------------

_NUMBER_SIGN = re.compile(r"(?:(?<!\w)#|\b(?P<word>[Nn]o)\.)\s?(?P<digits>[0-9]+)(?![0-9])")
_RANGE = re.compile(
    r"(?<![\w.,/:-])(?P<low>[0-9]{1,6})[-\u2013](?P<high>[0-9]{1,6})(?![\w-]|[.,/:][0-9])"
)
_YEAR = re.compile(
    r"(?<![\w.,:/'-])(?P<year>1[1-9][0-9]{2}|20[0-9]{2})(?P<plural>'?s)?(?!\w|[.,:/][0-9])"
)
_DECADE = re.compile(r"(?<![\w.,:/'-])'?(?P<decade>[1-9]0)'?s(?!\w)")
_ENGLISH_NUMBER = re.compile(
    rf"{_SIGN}(?P<whole>[0-9]{{1,3}}(?:,[0-9]{{3}})+(?![0-9])|[0-9]+)(?P<fraction>(?:\.[0-9]+)*)"
)
_FOREIGN_NUMBER = re.compile(
    r"(?:(?<![\w.,])(?P<minus>[-\u2212]))?(?<![0-9])(?<![0-9][.,])(?P<digits>[0-9]+)(?![0-9]|[.,][0-9])"
)


def _number_sign(match: re.Match[str]) -> Reading:
    return [
        (_match_case(match["word"] or "", "number"), (match.start(), match.start("digits"))),
        (_integer(match["digits"]), match.span("digits")),
    ]


def _year_or_integer(digits: str) -> str:
    return _year(digits) if _is_year(digits) else _integer(digits)


def _range(match: re.Match[str]) -> str | None:
    low, high = match["low"], match["high"]
    # "1990-95" ends in 1995.
    end = low[:2] + high if _is_year(low) and len(high) == 2 else high
    # A falling pair is a score or a code ("3-2", "20-10"), not a range.
    if int(low) >= int(end):
        return None
    return f"{_year_or_integer(low)} to {_year_or_integer(high)}"


def _year_match(match: re.Match[str]) -> str:
    said = _year(match["year"])
    return _pluralise(said) if match["plural"] else said


def _english_number(match: re.Match[str]) -> str:
    whole, parts = match["whole"], match["fraction"].split(".")[1:]
    said = _words(whole.replace(",", "")) if "," in whole else _integer(whole)
    if len(parts) == 1:
        said = f"{said} point {_digits(parts[0])}"
    elif parts:
        # "1.2.3" is a version, read part by part.
        said = " point ".join([said, *(_integer(part) for part in parts)])
    return _signed(match["sign"], said)


def _foreign_number(match: re.Match[str], language: str) -> str:
    digits, minus = match["digits"], match["minus"]
    if _reads_as_code(digits):
        return f"{minus or ''}{_digits(digits, language)}"
    if minus:
        return _num2words(-int(digits), language) or f"{minus}{_words(digits, language)}"
    return _words(digits, language)


def read_number_signs(text: _Text) -> _Text:
    return _substitute(_NUMBER_SIGN, _number_sign, text)


def read_ranges(text: _Text) -> _Text:
    return _substitute(_RANGE, _range, text)


def read_years(text: _Text) -> _Text:
    text = _substitute(_YEAR, _year_match, text)
    return _substitute(_DECADE, lambda m: _pluralise(_words(m["decade"])), text)


def read_numbers(text: _Text) -> _Text:
    return _substitute(_ENGLISH_NUMBER, _english_number, text)


def read_foreign_numbers(text: _Text, language: str) -> _Text:
    """Plain integers in a num2words language; "3,14" or "1.000" are left as
    they are, since which separator is the decimal one depends on the locale."""
    return _substitute(_FOREIGN_NUMBER, partial(_foreign_number, language=language), text)


# --- Abbreviations and symbols --------------------------------------------

_TITLES = {"Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Dr": "Doctor", "Prof": "Professor"}
# Titles only count before a name, where the period (often left out in British
# usage) never ends a sentence.
_TITLE = re.compile(r"\b(?P<title>Mrs|Mr|Ms|Dr|Prof)\b\.?(?=\s+[A-Z])")
_SAINT = re.compile(r"\bSt\b\.?(?=\s+[A-Z])")
_STREET = re.compile(rf"(?<=\w )St{_ABBREVIATION_DOT}")
# The period of these can also end the sentence; there it stays.
_FINAL_ABBREVIATIONS = {"etc": "et cetera", "jr": "Junior", "sr": "Senior"}
# These always lead into more of the sentence ("e.g. Paris"), so the period goes.
_INNER_ABBREVIATIONS = {"e.g": "for example", "i.e": "that is", "vs": "versus", "approx": "approximately"}


def _abbreviation_pattern(abbreviations: dict[str, str], dot: str) -> re.Pattern[str]:
    written = "|".join(re.escape(abbreviation) for abbreviation in abbreviations)
    return re.compile(rf"(?<![\w.])(?P<written>(?i:{written})){dot}")


_FINAL_ABBREVIATION = _abbreviation_pattern(_FINAL_ABBREVIATIONS, _ABBREVIATION_DOT)
_INNER_ABBREVIATION = _abbreviation_pattern(_INNER_ABBREVIATIONS, r"\.")
_SYMBOL = re.compile(r"&+|=+|@|(?<=\w)\+(?=\w)|(?<=\w )\+(?= \w)")
_SYMBOL_WORDS = {"&": "and", "=": "equals", "@": "at", "+": "plus"}


def _abbreviation(match: re.Match[str], expansions: dict[str, str]) -> str:
    return _match_case(match["written"], expansions[match["written"].lower()])


def expand_abbreviations(text: _Text) -> _Text:
    text = _substitute(_TITLE, lambda m: _TITLES[m["title"]], text)
    text = _substitute(_SAINT, lambda m: "Saint", text)
    text = _substitute(_STREET, lambda m: "Street", text)
    text = _substitute(_FINAL_ABBREVIATION, partial(_abbreviation, expansions=_FINAL_ABBREVIATIONS), text)
    return _substitute(_INNER_ABBREVIATION, partial(_abbreviation, expansions=_INNER_ABBREVIATIONS), text)


def read_symbols(text: _Text) -> _Text:
    return _substitute(_SYMBOL, lambda m: _SYMBOL_WORDS[m[0][0]], text)


# --- Entry point ----------------------------------------------------------


def _english_rules(month_first: bool) -> tuple[Callable[[Spoken], Spoken], ...]:
    return (
        read_emails,
        read_urls,
        read_iso_dates,
        partial(read_numeric_dates, month_first=month_first),
        read_month_dates,
        read_times,
        read_phone_numbers,
        read_slashed_numbers,
        read_money,
        read_percentages,
        read_ordinals,
        read_units,
        read_number_signs,
        read_ranges,
        read_years,
        read_numbers,
        expand_abbreviations,
        read_symbols,
    )


def _num2words_language(base: str, region: str) -> str | None:
    """"pt", "br" → "pt_BR"; "de", "de" → "de"; None where num2words has neither."""
    for candidate in (f"{base}_{region.upper()}", base):
        if candidate in CONVERTER_CLASSES:
            return candidate
    return None


def normalize_with_spans(text: str, language: str) -> Spoken:
    """`spell_out`, with the written span each character it says comes from."""
    spoken = Spoken.of(text)
    base, _, region = canonical_language(language).partition("-")
    if base == _ENGLISH:
        for rule in _english_rules(month_first=region in ("", "us")):
            spoken = rule(spoken)
        return spoken
    converter = _num2words_language(base, region)
    return read_foreign_numbers(spoken, converter) if converter else spoken


def spell_out(text: str, language: str) -> str:
    """text with what an engine would misread spelt out as words.

    language is a tag like "en", "en-GB" or "pt-br". English gets every rule;
    other languages only their integers, where num2words supports them.
    """
    return normalize_with_spans(text, language).text
