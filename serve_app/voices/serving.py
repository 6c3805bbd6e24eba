"""The voice library: clone from an upload, list, get, sample, delete.

Presets come from the engine; cloned voices from the VoiceProfiles deployment.
"""

from __future__ import annotations

from serve_app.tts.serving import TTSServing
from serve_app.voices.protocol import EngineSummary, Voice, VoiceList
from voicegraph.core.errors import BuiltinVoiceError, NotFoundError
from voicegraph.engines.base import resolve_language
from voicegraph.engines.catalog import EngineCatalog, Preset
from voicegraph.voices.cloning import ClonedReference, check_reference_bytes
from voicegraph.voices.profiles import VoiceRecord, voice_exists, voice_id_for


def preset_voice(preset: Preset, public_id: str) -> Voice:
    voice = next(v for v in preset.info.voices if v.id == preset.voice_id)
    return Voice(
        id=public_id, name=voice.name, description=voice.description, kind="preset",
        engine=preset.engine, model=preset.info.model, language=voice.language, sample_rate=voice.sample_rate,
    )


def cloned_voice(record: VoiceRecord, catalog: EngineCatalog) -> Voice:
    return Voice(
        id=record.id,
        name=record.name,
        description=record.description,
        kind="cloned",
        engine=record.engine,
        model=record.model,
        usable=record.engine in catalog.engines and catalog.info(record.engine).model == record.model,
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

    async def create(
        self, audio: bytes, name: str, language: str | None, description: str, overwrite: bool,
        engine: str | None = None,
    ) -> Voice:
        settings = self.tts.settings
        catalog = await self.tts.catalog()
        # Everything cheap first: a bad name or language must not cost a clone.
        info = catalog.cloning_engine(engine)
        taken = {preset.voice_id for preset in catalog.presets()} | set(catalog.all_voice_ids())
        voice_id = voice_id_for(name, settings.voices.max_name_chars, taken)
        language = resolve_language(language or self.tts.default_language(info), info.languages, info.engine)
        check_reference_bytes(audio, settings.voices.max_upload_bytes)
        if not overwrite and await self._profiles.exists.remote(voice_id):
            raise voice_exists(voice_id)
        reference: ClonedReference = await self._cloner.clone.remote(audio, language, info.engine)
        record: VoiceRecord = await self._profiles.save.remote(
            voice_id, name, description, language, reference, overwrite
        )
        return cloned_voice(record, catalog)

    async def list(self) -> VoiceList:
        catalog = await self.tts.catalog()
        records: list[VoiceRecord] = await self._profiles.list_records.remote()
        default = catalog.default
        return VoiceList(
            engine=default.engine,
            model=default.model,
            default_voice=self.tts.public_voice_id(default, self.tts.default_voice(default)),
            default_language=self.tts.default_language(default),
            voices=[preset_voice(preset, catalog.public_id(preset)) for preset in catalog.presets()]
            + [cloned_voice(record, catalog) for record in records],
            languages=sorted({language for info in catalog.infos() for language in info.languages}),
            engines=[
                EngineSummary(
                    engine=info.engine,
                    model=info.model,
                    default_voice=self.tts.public_voice_id(info, self.tts.default_voice(info)),
                    default_language=self.tts.default_language(info),
                    languages=list(info.languages),
                    can_clone=info.can_clone,
                )
                for info in catalog.infos()
            ],
        )

    async def get(self, voice_id: str) -> Voice:
        catalog = await self.tts.catalog()
        preset = catalog.find_preset(voice_id)
        if preset is not None:
            return preset_voice(preset, catalog.public_id(preset))
        return cloned_voice(await self._profiles.record.remote(voice_id), catalog)

    async def sample(self, voice_id: str) -> bytes:
        catalog = await self.tts.catalog()
        if catalog.find_preset(voice_id) is not None:
            raise NotFoundError(
                f"{voice_id!r} is a built-in voice and has no stored sample; "
                "POST /v1/tts with it to hear it"
            )
        return await self._profiles.sample.remote(voice_id)

    async def delete(self, voice_id: str) -> Voice:
        catalog = await self.tts.catalog()
        if catalog.find_preset(voice_id) is not None:
            raise BuiltinVoiceError(f"{voice_id!r} is a built-in voice and cannot be deleted")
        return cloned_voice(await self._profiles.delete.remote(voice_id), catalog)
