"""Make torchaudio importable beside a CPU-only torch.

PyPI's torchaudio wheels link CUDA libraries, so on a CPU-only torch `import
torchaudio` fails on its native extensions. Without them it imports as pure
Python, and the parts XTTS uses (resample, MelSpectrogram) work. This removes
those extensions, and only where torch itself is a CPU build: a CUDA torch
loads them fine and needs them. Run after every install of the xtts extra.
"""

import importlib.util
import sys
from pathlib import Path


def main() -> int:
    import torch

    if torch.version.cuda is not None:
        print("cpu_torchaudio: torch is a CUDA build; torchaudio left as it is")
        return 0
    spec = importlib.util.find_spec("torchaudio")
    if spec is None or spec.origin is None:
        print("cpu_torchaudio: torchaudio not installed")
        return 0
    removed = [path for path in (Path(spec.origin).parent / "lib").glob("*.so")]
    for path in removed:
        path.unlink()
    import torchaudio.functional  # noqa: F401  (fails loudly if this did not help)

    print(f"cpu_torchaudio: removed {len(removed)} CUDA-linked extension(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
