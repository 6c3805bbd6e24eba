"""Which engine a voice id names, with several engines side by side."""

import pytest

from voicegraph.core.errors import (
    AmbiguousVoiceError,
    CloningUnsupportedError,
    UnknownEngineError,
    UnknownVoiceError,
)
from voicegraph.engines.base import EngineInfo, VoiceInfo
from voicegraph.engines.catalog import EngineCatalog, engine_for_openai_model


def engine(name: str, voices: tuple[str, ...], can_clone: bool) -> EngineInfo:
    return EngineInfo(
        name, f"{name}-model", 22050, ("en-us",), tuple(VoiceInfo(v, v, "") for v in voices), "en-us",
        {"*": 200}, can_clone=can_clone,
    )


PIPER = engine("piper", ("en_us-joe-medium", "shared"), can_clone=False)
ESPEAK = engine("espeak", ("default", "deep", "shared"), can_clone=True)
XTTS = engine("xtts", ("Ana Florence", "default"), can_clone=True)
CATALOG = EngineCatalog([PIPER, ESPEAK, XTTS], "piper")


@pytest.mark.parametrize(
    "voice, engine_name, voice_id",
    [
        ("piper/en_us-joe-medium", "piper", "en_us-joe-medium"),
        ("en_us-joe-medium", "piper", "en_us-joe-medium"),  # bare: one engine offers it
        ("xtts/Ana Florence", "xtts", "Ana Florence"),
        ("deep", "espeak", "deep"),
        ("shared", "piper", "shared"),  # two offer it, one of them the default engine
        ("espeak/shared", "espeak", "shared"),
        ("espeak/default", "espeak", "default"),
    ],
)
def test_a_voice_id_names_its_engine(voice, engine_name, voice_id):
    preset = CATALOG.find_preset(voice)
    assert (preset.engine, preset.voice_id, preset.full_id) == (engine_name, voice_id, f"{engine_name}/{voice_id}")


@pytest.mark.parametrize(
    "voice, error, words",
    [
        ("default", AmbiguousVoiceError, "espeak/default, xtts/default"),
        ("piper/deep", UnknownVoiceError, "piper engine has no voice 'deep'"),
    ],
)
def test_ids_that_name_no_one_voice_are_refused_with_the_choices(voice, error, words):
    with pytest.raises(error, match=words):
        CATALOG.find_preset(voice)


def test_an_id_no_engine_offers_may_be_a_clone():
    assert CATALOG.find_preset("my-narrator") is None
    assert CATALOG.find_preset("kokoro/x") is None  # not an engine here: a clone id cannot have a slash either


def test_ids_are_qualified_only_once_there_are_several_engines():
    alone = EngineCatalog([ESPEAK], "espeak")
    assert alone.all_voice_ids() == ["deep", "default", "shared"]
    assert "piper/en_us-joe-medium" in CATALOG.all_voice_ids()


@pytest.mark.parametrize(
    "engines, default, requested, expected",
    [
        ([PIPER, ESPEAK], "piper", None, "espeak"),  # the default cannot: the first that can
        ([PIPER, ESPEAK, XTTS], "xtts", None, "xtts"),
        ([PIPER, ESPEAK, XTTS], "piper", "xtts", "xtts"),
    ],
)
def test_clones_are_made_by_an_engine_that_can(engines, default, requested, expected):
    assert EngineCatalog(engines, default).cloning_engine(requested).engine == expected


def test_an_engine_that_cannot_clone_is_refused_and_the_ones_that_can_are_named():
    with pytest.raises(CloningUnsupportedError, match="send engine espeak or xtts"):
        CATALOG.cloning_engine("piper")
    with pytest.raises(CloningUnsupportedError, match=r"engines: \[xtts\]"):
        EngineCatalog([PIPER], "piper").cloning_engine()
    with pytest.raises(UnknownEngineError, match="runs piper, espeak, xtts"):
        CATALOG.cloning_engine("kokoro")


MODELS = {"tts-1": ["piper", "espeak"], "tts-1-hd": ["xtts", "piper"]}


@pytest.mark.parametrize(
    "engines, model, expected",
    [
        ([PIPER, ESPEAK, XTTS], "tts-1", "piper"),
        ([PIPER, ESPEAK, XTTS], "tts-1-hd", "xtts"),
        ([PIPER, ESPEAK], "tts-1-hd", "piper"),  # no XTTS here: the next preference
        ([ESPEAK], "tts-1-hd", "espeak"),  # none of its preferences: the default engine
        ([PIPER, ESPEAK, XTTS], "espeak-model", "espeak"),  # a model id from GET /v1/models
        ([PIPER, ESPEAK, XTTS], "xtts", "xtts"),
        ([PIPER, ESPEAK, XTTS], "whatever-the-user-typed", "piper"),
    ],
)
def test_openai_model_names_pick_the_first_engine_served(engines, model, expected):
    catalog = EngineCatalog(engines, engines[0].engine)
    assert engine_for_openai_model(model, MODELS, catalog).engine == expected
