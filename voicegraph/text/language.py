"""Language tags as users write them ("EN_us", "pt-BR") and as the service compares them."""

from __future__ import annotations


def canonical_language(language: str) -> str:
    """"EN_us" → "en-us": the form engines list their languages in."""
    return language.strip().lower().replace("_", "-")
