"""Build a tiny, randomly initialised XTTS checkpoint: `voicegraph-tiny-xtts DIR`.

Real XTTS v2 weights cannot be downloaded everywhere (not in CI, not here).
This writes a model directory with the same files and layout as a real one
(`config.json`, `model.pth`, `vocab.json`, `speakers_xtts.pth` with one voice
conditioned on eSpeak speech), so the engine's real loading, conditioning and
inference code runs on it. It speaks noise, and never emits
its stop token: generation must be bounded, which is the point of testing it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

# Characters the tiny vocabulary knows, besides XTTS's special tokens.
_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789 .,;:!?'-"
_SPECIAL = ["[STOP]", "[UNK]", "[SPACE]", "[START]"]


def _write_vocab(path: Path, languages: list[str]) -> None:
    """A BPE with no merges: each character is a token (what `tokenizers` loads)."""
    tokens = _SPECIAL + [f"[{language}]" for language in languages]
    tokens += [c for c in _CHARACTERS if c != " "]
    vocab = {token: index for index, token in enumerate(tokens)}
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for t in tokens[: len(_SPECIAL) + len(languages)]
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "BPE", "dropout": None, "unk_token": "[UNK]", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "vocab": vocab, "merges": []},
    }
    path.write_text(json.dumps(tokenizer))


TINY_SPEAKER = "Tiny Narrator"


def _reference_speech() -> np.ndarray:
    """Real (eSpeak) speech to condition on, 22,050 Hz. Where eSpeak NG is not
    installed (the lent GPU machine), a voiced tone with vibrato instead: a
    random model's voice has no use for what was said."""
    try:
        from voicegraph.engines.espeak import EspeakEngine

        return EspeakEngine().synthesize(
            "A tiny model speaks with this voice, taken from a short recording.", "soft", "en-us", 1.0
        )
    except (ImportError, OSError) as exc:
        print(f"no eSpeak NG ({exc}): conditioning the random model on a tone", file=sys.stderr)
        t = np.arange(3 * 22050) / 22050
        pitch = 120 + 8 * np.sin(2 * np.pi * 5 * t)
        phase = 2 * np.pi * np.cumsum(pitch) / 22050
        return (0.3 * sum(np.sin(k * phase) / k for k in range(1, 8))).astype(np.float32)


def _speaker_latents(model) -> dict:
    """A speakers-file entry."""
    import torch

    audio = torch.from_numpy(_reference_speech()).unsqueeze(0)
    with torch.inference_mode():
        return {
            "gpt_cond_latent": model.get_gpt_cond_latents(audio, 22050),
            "speaker_embedding": model.get_speaker_embedding(audio, 22050),
        }


# Random-weight models for benchmarks, from the tests' size to the real one's;
# max_audio_tokens bounds the audio one chunk may generate.
SIZES = {
    "tiny": {"channels": 32, "layers": 1, "heads": 2, "max_audio_tokens": 64},
    "small": {"channels": 256, "layers": 4, "heads": 4, "max_audio_tokens": 256},
    "full": {"channels": 1024, "layers": 30, "heads": 16, "max_audio_tokens": 605},  # XTTS v2: 453M parameters
}


def build_tiny_xtts(
    directory: Path, channels: int = 32, layers: int = 1, seed: int = 0, heads: int = 2, max_audio_tokens: int = 64
) -> Path:
    import torch
    from TTS.tts.configs.xtts_config import XttsArgs, XttsConfig
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
    from TTS.tts.models.xtts import Xtts

    torch.manual_seed(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    languages = ["en", "es", "fr", "de"]
    _write_vocab(directory / "vocab.json", languages)
    vocab_size = len(json.loads((directory / "vocab.json").read_text())["model"]["vocab"])

    args = XttsArgs(
        gpt_layers=layers,
        gpt_n_model_channels=channels,
        gpt_n_heads=heads,
        decoder_input_dim=channels,
        gpt_use_perceiver_resampler=True,
        gpt_max_audio_tokens=max_audio_tokens,
        gpt_number_text_tokens=vocab_size,
        gpt_start_text_token=vocab_size - 1,
        gpt_stop_text_token=0,
        d_vector_dim=512,
        tokenizer_file=str(directory / "vocab.json"),
    )
    config = XttsConfig(model_args=args, languages=languages)
    model = Xtts(config)
    model.tokenizer = VoiceBpeTokenizer(vocab_file=str(directory / "vocab.json"))
    model.init_models()
    torch.save({"model": model.state_dict()}, directory / "model.pth")
    torch.save({TINY_SPEAKER: _speaker_latents(model)}, directory / "speakers_xtts.pth")
    config.model_args.tokenizer_file = ""  # loaded from the model directory instead
    config.save_json(str(directory / "config.json"))
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    print(build_tiny_xtts(parser.parse_args().directory))


if __name__ == "__main__":
    main()
