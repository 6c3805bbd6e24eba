"""Texts the load tests send: every one different, since the response cache
answers a repeated text without synthesis. No Locust import."""

from __future__ import annotations

import random

SENTENCES = (
    "The morning train left the station while the fog still covered the valley.",
    "She opened the old letter and read it twice before she said a word.",
    "Our garden is full of tomatoes, beans and far too many sunflowers this year.",
    "Please remember to close the windows before the storm reaches the coast.",
    "The museum keeps its oldest maps in a cool room behind the library.",
    "He tuned the guitar slowly, listening to every string as it settled.",
    "A small boat drifted past the harbour lights and out into the dark sea.",
    "Every evening the baker sets aside a loaf for the neighbour across the street.",
    "The committee will publish its findings once the last interviews are done.",
    "Children ran along the beach, chasing the waves and shouting with joy.",
    "The recipe asks for fresh herbs, a little lemon and plenty of patience.",
    "Snow fell quietly over the mountain village throughout the long night.",
    "The engineer checked the bridge cables one by one before the road reopened.",
    "Thunder rolled across the hills as the farmers hurried the sheep inside.",
    "Her favourite chapter describes a journey through a forest of silver trees.",
    "The lighthouse keeper wrote down the weather in a worn leather notebook.",
)


def short_text() -> str:
    # A number makes each text unique (the cache); normalisation reads it as words.
    return f"{' '.join(random.sample(SENTENCES, 2))} This is request number {random.randint(1, 10**9)}."


def long_text(characters: int) -> str:
    """A text of at most `characters` that normalisation leaves as it is (no digits,
    no abbreviations), so the limit holds after it; random order makes it unique."""
    text = ""
    while True:
        sentence = random.choice(SENTENCES)
        if len(text) + 1 + len(sentence) > characters:
            return text or sentence[:characters]
        text = f"{text} {sentence}" if text else sentence
