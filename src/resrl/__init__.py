"""resrl: residual RL for frozen VLA policies, gated by a value-based arbiter (VGM).

The generated interfaces (``resrl.msg``, ``resrl.srv``) live in the colcon install space and
the pure-Python library in ``src/resrl``; extending ``__path__`` lets one ``resrl`` package
span both during development (PYTHONPATH=src:<install site-packages>).
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
