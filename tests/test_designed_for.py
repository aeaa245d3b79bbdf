"""Which optimiser a gradient-scaling method was designed for: a class attribute that lands in the run record."""
from avlab.methods import MLB, OGMGE, DiscrepancyMonitor
from avlab.methods.base import Method


def test_designed_for_is_in_the_method_config():
    # OGM-GE's authors trained with SGD (momentum 0.9), MLB's with Adam (research notes, methods.md 1.2 and 3.3)
    assert OGMGE().config()["designed_for"] == "sgd" and OGMGE(noise=False).config()["designed_for"] == "sgd"
    assert MLB().config()["designed_for"] == "adam" and MLB(balance=False).config()["designed_for"] == "adam"
    assert Method.designed_for is None and "designed_for" not in DiscrepancyMonitor().config()  # no claim, no entry
