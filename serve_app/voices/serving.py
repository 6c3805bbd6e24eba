"""The voice library: clone from an upload, list, get, sample, delete.

Presets come from the engine; cloned voices from the VoiceProfiles deployment.
"""

from __future__ import annotations

from serve_app.tts.serving import TTSServing
from serve_app.voices.protocol import Voice, VoiceList
from voicegraph.core.errors import BuiltinVoiceError, NotFoundError
from voicegraph.engines import EngineInfo, VoiceInfo
from voicegraph.engines.base import cloning_unsupported, resolve_language
from voicegraph.voices.cloning import ClonedReference, check_reference_bytes
from voicegraph.voices.profiles import VoiceRecord, voice_exists, voice_id_for


def preset_voice(preset: VoiceInfo, info: EngineInfo) -> Voice:
    return Voice(
        id=preset.id, name=preset.name, description=preset.description, kind="preset",
        engine=info.engine, model=info.model, language=preset.language, sample_rate=preset.sample_rate,
    )


def cloned_voice(record: VoiceRecord, info: EngineInfo) -> Voice:
    return Voice(
        id=record.id,
        name=record.name,
        description=record.description,
        kind="cloned",
        engine=record.engine,
        model=record.model,
        usable=(record.engine, record.model) == (info.engine, info.model),
        language=record.language,
        created_at=record.created_at,
        method=record.method,
        reference_duration_s=record.reference_duration_s,
        sample=f"/v1/voices/{record.id}/sample",
        sample_path=record.sample_path,
        sample_url=record.sample_url,
    )


class VoicesServing:
    def __init__(self, tts: TTSServing, cloner, profiles):
        self.tts = tts
        self._cloner = cloner
        self._profiles = profiles

    def _presets(self, info: EngineInfo) -> dict[str, VoiceInfo]:
        return {voice.id: voice for voice in info.voices}

    async def create(
        self, audio: bytes, name: str, language: str | None, description: str, overwrite: bool
    ) -> Voice:
        settings = self.tts.settings
        info = await self.tts.engine_info()
        # Everything cheap first: a bad name or language must not cost a clone.
        if not info.can_clone:
            raise cloning_unsupported(info.engine)
        voice_id = voice_id_for(name, settings.voices.max_name_chars, set(self._presets(info)))
        language = resolve_language(
            language or self.tts.default_language(info), info.languages, info.engine
        )
        check_reference_bytes(audio, settings.voices.max_upload_bytes)
        if not overwrite and await self._profiles.exists.remote(voice_id):
            raise voice_exists(voice_id)
        reference: ClonedReference = await self._cloner.clone.remote(audio, language)
        record: VoiceRecord = await self._profiles.save.remote(
            voice_id, name, description, language, reference, overwrite
        )
        return cloned_voice(record, info)

    async def list(self) -> VoiceList:
        info = await self.tts.engine_info()
        records: list[VoiceRecord] = await self._profiles.list_records.remote()
        return VoiceList(
            engine=info.engine,
            model=info.model,
            default_voice=self.tts.default_voice(info),
            default_language=self.tts.default_language(info),
            voices=[preset_voice(v, info) for v in info.voices]
            + [cloned_voice(record, info) for record in records],
            languages=list(info.languages),
        )

    async def get(self, voice_id: str) -> Voice:
        info = await self.tts.engine_info()
        preset = self._presets(info).get(voice_id)
        if preset is not None:
            return preset_voice(preset, info)
        return cloned_voice(await self._profiles.record.remote(voice_id), info)

    async def sample(self, voice_id: str) -> bytes:
        info = await self.tts.engine_info()
        if voice_id in self._presets(info):
            raise NotFoundError(
                f"{voice_id!r} is a built-in voice and has no stored sample; "
                "POST /v1/tts with it to hear it"
            )
        return await self._profiles.sample.remote(voice_id)

    async def delete(self, voice_id: str) -> Voice:
        info = await self.tts.engine_info()
        if voice_id in self._presets(info):
            raise BuiltinVoiceError(f"{voice_id!r} is a built-in voice and cannot be deleted")
        return cloned_voice(await self._profiles.delete.remote(voice_id), info)

