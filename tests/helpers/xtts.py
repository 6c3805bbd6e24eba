def tiny_xtts_settings(model_dir, reference_clip, **overrides):
    """Settings for the tiny checkpoint: short generations keep tests quick."""
    from voicegraph.core.settings import Settings

    xtts = {"voice_clips": {"narrator": [str(reference_clip)]}, "tokens_per_char": 0.5, "min_new_tokens": 8}
    return Settings(engine="xtts", model_dir=model_dir, xtts=xtts, **overrides)
