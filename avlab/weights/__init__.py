"""Where an encoder's starting weights come from: cross-modal transfer of image weights to a spectrogram
encoder (`transfer.py`), and the small pre-trained visual ResNet-18 that avlab makes offline (`pretrain.py`)."""
