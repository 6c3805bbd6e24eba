def tiny_xtts_settings(model_dir, reference_clip, **overrides):
    """Settings for the tiny checkpoint: short generations keep tests quick."""
    from voicegraph.core.settings import Settings

    xtts = {"voice_clips": {"narrator": [str(reference_clip)]}, "tokens_per_char": 0.5, "min_new_tokens": 8}
    return Settings(engine="xtts", model_dir=model_dir, xtts=xtts, **overrides)


def make_prompts_matter(engine):
    """The tiny model with its GPT weights scaled up: at its random initial
    scale the prompt barely moves the logits and every chunk generates the
    same codes, so a batch that mixed up its rows would go unnoticed."""
    import torch

    with torch.no_grad():
        for weight in engine.model.gpt.gpt.parameters():
            weight.mul_(4.0)
        engine.model.gpt.text_embedding.weight.mul_(20.0)
    return engine
