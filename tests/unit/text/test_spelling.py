import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicegraph.text.spelling import (
    expand_abbreviations,
    read_numeric_dates,
    read_phone_numbers,
    read_ranges,
    read_urls,
    spell_out,
)

ENGLISH = [
    # cardinals, negatives, decimals, codes
    ("42", "forty-two"),
    ("1,234,567", "one million, two hundred and thirty-four thousand, five hundred and sixty-seven"),
    ("-5", "minus five"),
    ("3.14", "three point one four"),
    ("version 2.0", "version two point zero"),
    ("Python 3.11.7", "Python three point eleven point seven"),
    ("COVID-19", "COVID-nineteen"),
    ("iPhone 15", "iPhone fifteen"),
    ("A4 paper", "A four paper"),
    ("Route 66", "Route sixty-six"),
    ("5551234", "five five five one two three four"),
    ("agent 007", "agent zero zero seven"),
    # ordinals
    ("1st place", "first place"),
    ("2nd", "second"),
    ("23rd", "twenty-third"),
    ("101st", "one hundred and first"),
    ("the 1,000th visitor", "the one thousandth visitor"),
    # money
    ("$1", "one dollar"),
    ("$5", "five dollars"),
    ("$3.50", "three dollars and fifty cents"),
    ("$0.99", "ninety-nine cents"),
    ("$1.01", "one dollar and one cent"),
    ("£20", "twenty pounds"),
    ("£0.01", "one penny"),
    ("€1.5", "one euro and fifty cents"),
    ("€1.50", "one euro and fifty cents"),
    ("¥100", "one hundred yen"),
    ("$2.5 million", "two point five million dollars"),
    ("$2.5M", "two point five million dollars"),
    ("$1bn", "one billion dollars"),
    ("-$5", "minus five dollars"),
    ("$5-$10", "five to ten dollars"),
    ("It costs $1,000,000.", "It costs one million dollars."),
    # percentages
    ("50%", "fifty percent"),
    ("12.5%", "twelve point five percent"),
    ("10-20%", "ten to twenty percent"),
    # years and decades
    ("in 1999", "in nineteen ninety-nine"),
    ("2005", "two thousand and five"),
    ("the 1990s", "the nineteen nineties"),
    ("the '90s", "the nineties"),
    ("in her 20s", "in her twenties"),
    ("1990-95", "nineteen ninety to ninety-five"),
    ("2010-2020", "twenty ten to twenty twenty"),
    # dates: always "Month ordinal, year"
    ("2026-11-21", "November twenty-first, twenty twenty-six"),
    ("11/21/2026", "November twenty-first, twenty twenty-six"),
    ("21/11/2026", "November twenty-first, twenty twenty-six"),  # only one order is a date
    ("21 November 2026", "November twenty-first, twenty twenty-six"),
    ("on the 21st of November, 2026", "on November twenty-first, twenty twenty-six"),
    ("The 5th of May was fine", "May fifth was fine"),
    ("November 21, 2026.", "November twenty-first, twenty twenty-six."),
    ("on Jan. 3. He left", "on January third. He left"),
    ("2026-13-45", "two thousand and twenty-six thirteen forty-five"),
    ("13/45/2026", "thirteen forty-five two thousand and twenty-six"),
    ("May 45", "May forty-five"),
    # times
    ("3:30", "three thirty"),
    ("10:05", "ten oh five"),
    ("7:00", "seven o'clock"),
    ("3:30pm", "three thirty p m"),
    ("3:30 PM", "three thirty p m"),
    ("14:45", "fourteen forty-five"),
    ("at 5 p.m. on Friday", "at five p m on Friday"),
    ("Come at 5 p.m. Then eat.", "Come at five p m. Then eat."),
    ("10:05:30", "ten oh five and thirty seconds"),
    # ranges, slashes, phone numbers
    ("10-20", "ten to twenty"),
    ("a 3-2 win", "a three-two win"),
    ("24/7", "twenty-four seven"),
    ("9/11", "nine eleven"),
    ("3/4 cup", "three quarters cup"),
    ("1 1/2 hours", "one and one half hours"),
    ("Call 555-123-4567.", "Call five five five, one two three, four five six seven."),
    ("(555) 123-4567", "five five five, one two three, four five six seven"),
    ("+1 555-123-4567", "plus one, five five five, one two three, four five six seven"),
    ("100-2000 times", "one hundred to two thousand times"),
    # units, British spelling, plural unless exactly 1
    ("1 km", "one kilometre"),
    ("5 km", "five kilometres"),
    ("5km", "five kilometres"),
    ("1.5 km", "one point five kilometres"),
    ("-5°C", "minus five degrees Celsius"),
    ("1°F", "one degree Fahrenheit"),
    ("100 km/h", "one hundred kilometres per hour"),
    ("60 mph", "sixty miles per hour"),
    ("1 lb", "one pound"),
    ("5 lbs", "five pounds"),
    ("6 ft", "six feet"),
    ("250 ml", "two hundred and fifty millilitres"),
    ("2 l", "two litres"),
    ("16 GB", "sixteen gigabytes"),
    ("44 kHz", "forty-four kilohertz"),
    ("ran 10 m.", "ran ten metres."),
    ("a m b", "a m b"),  # "m" is metres only after a number
    ("10-20 kg", "ten to twenty kilograms"),
    # number signs
    ("No. 5", "Number five"),
    ("#5", "number five"),
    # abbreviations
    ("Dr. Smith lives on Elm St.", "Doctor Smith lives on Elm Street."),
    ("Mr. and Mrs. Smith", "Mr. and Missus Smith"),  # a title only before a name
    ("Mr Smith met Ms. Jones", "Mister Smith met Miz Jones"),
    ("Prof. Lee", "Professor Lee"),
    ("St. Paul", "Saint Paul"),
    ("Elm St. is closed", "Elm Street is closed"),
    ("Martin Luther King Jr. was born", "Martin Luther King Junior was born"),
    ("John Smith Sr. spoke", "John Smith Senior spoke"),
    ("cats vs. dogs", "cats versus dogs"),
    ("apples, pears, etc. are fruit", "apples, pears, et cetera are fruit"),
    ("apples, pears, etc.", "apples, pears, et cetera."),
    ("e.g. this", "for example this"),
    ("E.g., this", "For example, this"),
    ("i.e. that", "that is that"),
    ("approx. 5 km", "approximately five kilometres"),
    # symbols
    ("salt & pepper", "salt and pepper"),
    ("R&D", "R and D"),
    ("1 + 1 = 2", "one plus one equals two"),
    ("x=5", "x equals five"),
    ("meet @ noon", "meet at noon"),
    ("C++ code", "C++ code"),
    # addresses, before numbers
    ("https://www.example.com/docs", "example dot com slash docs"),
    ("See https://example.com/docs, then", "See example dot com slash docs, then"),
    ("Visit example.org.", "Visit example dot org."),
    ("Mail jane.doe@example.co.uk.", "Mail jane dot doe at example dot co dot uk."),
    (
        "http://example.com/2026/11/21",
        "example dot com slash two thousand and twenty-six slash eleven slash twenty-one",
    ),
    ("e.g. Node.js", "for example Node.js"),
    # nothing to do: byte for byte the same
    ("Hello, world!  Twice spaced.", "Hello, world!  Twice spaced."),
    ("", ""),
]


@pytest.mark.parametrize("text, expected", ENGLISH)
def test_english(text, expected):
    assert spell_out(text, "en") == expected


@pytest.mark.parametrize("normalized", sorted({expected for _, expected in ENGLISH}))
def test_english_output_is_stable(normalized):
    assert spell_out(normalized, "en") == normalized


@pytest.mark.parametrize(
    "text, language, expected",
    [
        ("11/12/2026", "en", "November twelfth, twenty twenty-six"),
        ("11/12/2026", "en-US", "November twelfth, twenty twenty-six"),
        ("11/12/2026", "en-gb", "December eleventh, twenty twenty-six"),
        ("11/12/2026", "en_AU", "December eleventh, twenty twenty-six"),
        ("Ich habe 42 Äpfel.", "de", "Ich habe zweiundvierzig Äpfel."),
        ("-5 Grad", "de-DE", "minus fünf Grad"),
        ("16", "pt", "dezasseis"),
        ("16", "pt-br", "dezesseis"),
        ("21 h", "fr-fr", "vingt et un h"),
        ("A4 und 007", "de", "A vier und null null sieben"),
        ("3,14 y 1.000", "es", "3,14 y 1.000"),  # which separator is decimal depends on locale
        ("Dr. Who, $5, 42", "xx", "Dr. Who, $5, 42"),
        ("42", "", "42"),
    ],
)
def test_languages(text, language, expected):
    assert spell_out(text, language) == expected


@pytest.mark.parametrize(
    "rule, text, expected",
    [
        (read_urls, "see www.example.com/v2.", "see example dot com slash v two."),
        (read_urls, "version 2.0 and e.g.", "version 2.0 and e.g."),
        (read_phone_numbers, "100-2000", "100-2000"),
        (read_ranges, "20-10", "20-10"),
        (read_ranges, "5-7", "five to seven"),
        (expand_abbreviations, "No. 5", "No. 5"),  # "No." is only "number" before a number
    ],
)
def test_rules_alone(rule, text, expected):
    assert rule(text) == expected


@pytest.mark.parametrize(
    "month_first, expected",
    [(True, "November twelfth, twenty twenty-six"), (False, "December eleventh, twenty twenty-six")],
)
def test_numeric_date_order(month_first, expected):
    assert read_numeric_dates("11/12/2026", month_first=month_first) == expected


LANGUAGES = st.sampled_from(["en", "en-us", "en-gb", "de", "fr-fr", "es", "xx", ""])
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=20)
INTEGERS = st.integers(-(10**15) + 1, 10**15 - 1).map(str)
WORDS_AND_INTEGERS = st.lists(st.one_of(WORDS, INTEGERS), max_size=12).map(" ".join)
ASCII_DIGIT = re.compile(r"[0-9]")


@settings(max_examples=200, deadline=None)
@given(text=st.text(), language=LANGUAGES)
def test_never_raises(text, language):
    assert isinstance(spell_out(text, language), str)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet="0123456789.,:/-$£€%@#& "), language=LANGUAGES)
def test_never_raises_on_numeric_punctuation(text, language):
    assert isinstance(spell_out(text, language), str)


@settings(max_examples=200, deadline=None)
@given(text=WORDS_AND_INTEGERS)
def test_english_leaves_no_digits(text):
    assert not ASCII_DIGIT.search(spell_out(text, "en"))


@settings(max_examples=200, deadline=None)
@given(text=WORDS_AND_INTEGERS, language=st.sampled_from(["en", "en-gb"]))
def test_normalising_twice_changes_nothing(text, language):
    once = spell_out(text, language)
    assert spell_out(once, language) == once


@settings(max_examples=200, deadline=None)
@given(
    words=st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12), min_size=1, max_size=12),
    separators=st.lists(st.sampled_from([" ", ", ", "! ", "? ", "; ", " - "]), min_size=12, max_size=12),
)
def test_plain_words_are_left_alone(words, separators):
    text = "".join(word + separator for word, separator in zip(words, separators)).strip()
    assert spell_out(text, "en") == text
