import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_splits(tmp_path_factory):
    """A small real AV-Digits build (synthesised speech, real digits), cached for the whole session."""
    from avlab.data import load_avdigits

    cache = tmp_path_factory.mktemp("avdigits")
    return load_avdigits("dominant_audio", cache_dir=cache, n_train=200, n_val=100, n_test=100)


@pytest.fixture(scope="session")
def avdigits_cache(tiny_splits, tmp_path_factory):
    """The folder that holds tiny_splits' cache, for tests that load the same data again (the command line)."""
    key = tiny_splits["train"].config.audio_key()
    return next(Path(tmp_path_factory.getbasetemp()).glob(f"avdigits*/audio-{key}.npz")).parent


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: a second intra-op thread only adds synchronisation (and spins on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    # never write into the user's data folder from a test
    monkeypatch.setenv("AVLAB_DATA", str(tmp_path / "avlab-data"))
    yield
