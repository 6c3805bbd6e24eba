"""The random checkpoints' reference voice, with and without eSpeak NG."""

import sys

import numpy as np

from voicegraph.engines import xtts_tiny


def test_the_reference_is_espeak_speech_where_espeak_is_installed():
    speech = xtts_tiny._reference_speech()
    assert speech.dtype == np.float32 and 1.0 < len(speech) / 22050 < 10.0
    assert np.abs(speech).max() > 0.05


def test_without_espeak_the_reference_is_a_voiced_tone(monkeypatch, capsys):
    # The lent GPU machine has no eSpeak NG: an import that fails stands for it.
    monkeypatch.setitem(sys.modules, "voicegraph.engines.espeak", None)
    tone = xtts_tiny._reference_speech()
    assert len(tone) == 3 * 22050 and np.abs(tone).max() <= 1.0
    spectrum = np.abs(np.fft.rfft(tone))
    assert 100 < np.argmax(spectrum) * 22050 / len(tone) < 140  # its fundamental, about 120 Hz
    assert "no eSpeak NG" in capsys.readouterr().err
