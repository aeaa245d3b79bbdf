"""Spoken digit words from eSpeak NG, driven through ctypes (the `espeakng-loader` wheel ships the engine).

eSpeak NG is a formant synthesiser: each voice is an accent (`en-us`, `en-gb-scotland`, ...) plus a variant
(`m3`, `f2`, `klatt`, ...), and rate, pitch and pitch range vary freely. That gives AV-Digits many "speakers"
without any recording. The engine is process-global and not thread-safe, so synthesis runs in the main process
and the results are cached by `avlab.data.avdigits`.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np
import torch
import torchaudio

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "adam", "linda")
SPEAKERS = tuple(f"{accent}+{variant}" for accent in ACCENTS for variant in VARIANTS)  # 128 voices

# espeak_PARAMETER values from speak_lib.h
_RATE, _PITCH, _RANGE = 1, 3, 4
_AUDIO_OUTPUT_SYNCHRONOUS = 2


class SpeechSynthesisError(RuntimeError):
    pass


@dataclass(frozen=True)
class Voice:
    speaker: str  # "accent+variant", one of SPEAKERS
    rate: int  # words per minute, 80..450
    pitch: int  # 0..100
    pitch_range: int  # 0..100


class ESpeak:
    """A thin, stateful wrapper around libespeak-ng; use the module-level `synthesize`."""

    _instance: "ESpeak | None" = None

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as err:
            raise SpeechSynthesisError(
                "AV-Digits needs the eSpeak NG engine from the `espeakng-loader` package: "
                "pip install espeakng-loader==0.2.4") from err
        self.lib = espeakng_loader.load_library()
        if self.lib is None:
            raise SpeechSynthesisError(f"could not load {espeakng_loader.get_library_path()}")
        data = espeakng_loader.get_data_path().encode()
        self.sample_rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if self.sample_rate <= 0:
            raise SpeechSynthesisError(f"espeak_Initialize failed (returned {self.sample_rate}) with data at {data!r}")
        self._chunks: list[np.ndarray] = []
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
        self._callback = callback_type(self._collect)  # keep a reference: the C side only holds a pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> "ESpeak":
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _collect(self, wav, n, _events):
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def say(self, text: str, voice: Voice, seed: int = 0) -> np.ndarray:
        """Synthesise `text`; float32 waveform in [-1, 1] at `self.sample_rate` (22,050 Hz). `seed` fixes the
        engine's noise (breathy voices); otherwise it is seeded from the clock."""
        if voice.speaker not in SPEAKERS and self.lib.espeak_SetVoiceByName(voice.speaker.encode()) != 0:
            raise SpeechSynthesisError(f"eSpeak NG has no voice {voice.speaker!r}")
        self.lib.espeak_SetVoiceByName(voice.speaker.encode())
        self.lib.espeak_SetParameter(_RATE, int(voice.rate), 0)
        self.lib.espeak_SetParameter(_PITCH, int(voice.pitch), 0)
        self.lib.espeak_SetParameter(_RANGE, int(voice.pitch_range), 0)
        self.lib.espeak_ng_SetRandSeed(int(seed) % 2**31)
        self._chunks.clear()
        encoded = text.encode() + b"\0"
        status = self.lib.espeak_Synth(encoded, len(encoded), 0, 0, 0, 0, None, None)
        if status != 0 or not self._chunks:
            raise SpeechSynthesisError(f"eSpeak NG produced no audio for {text!r} with voice {voice}")
        return np.concatenate(self._chunks).astype(np.float32) / 32768.0


def random_voices(rng: np.random.Generator, speakers: list[str], n: int) -> list[Voice]:
    """n voices drawn from `speakers` with random rate (120-240 wpm), pitch (15-85) and pitch range (10-90)."""
    picks = rng.integers(len(speakers), size=n)
    rates, pitches, ranges = rng.integers(120, 241, n), rng.integers(15, 86, n), rng.integers(10, 91, n)
    return [Voice(speakers[i], int(r), int(p), int(g)) for i, r, p, g in zip(picks, rates, pitches, ranges)]


def synthesize(words: list[str], voices: list[Voice], sample_rate: int = 16_000,
               seeds: list[int] | None = None) -> list[np.ndarray]:
    """Say each word with its voice; float32 waveforms resampled to `sample_rate`, silence trimmed.

    Bit-identical output needs the same seeds *and* the same sequence of calls from a fresh process: eSpeak's
    pitch flutter runs on a global counter that no API resets."""
    seeds = range(len(words)) if seeds is None else seeds
    engine = ESpeak.get()
    resample = torchaudio.transforms.Resample(engine.sample_rate, sample_rate)  # build the filter once
    with torch.no_grad():
        return [resample(torch.from_numpy(_trim(engine.say(word, voice, seed)))).numpy()
                for word, voice, seed in zip(words, voices, seeds, strict=True)]


def _trim(wav: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    loud = np.flatnonzero(np.abs(wav) > threshold)
    return wav[loud[0]: loud[-1] + 1] if loud.size else wav
