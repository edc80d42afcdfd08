"""Certifying a conversion: does the .tflite compute what Keras computes, up to rounding?

The converted file is cut at the tensors that stand for Keras tensors
(`segments`); each piece runs on Keras's own values at its inputs (`executor`), and
its output is compared with the Keras layers' float64 value within a float32
rounding bound derived per op (`bounds`); `check.certify` returns a `Certificate`
whose one-line verdict is PASS, or FAIL naming the first offending layer.

| module     | job                                                                  |
|------------|----------------------------------------------------------------------|
| `segments` | which tensors of the file stand for Keras tensors; the ops between   |
| `bounds`   | float64 evaluation of a Keras layer and a float32 runtime's error     |
| `executor` | running a cut-out piece (bitpacked inputs too) on a runtime          |
| `check`    | comparing, counting sign decisions, the verdict                      |

Example:

>>> from deploy.certify import certify
>>> cert = certify(model, open("m.tflite", "rb").read(), x)   # doctest: +SKIP
>>> print(cert.format_verdict())                             # doctest: +SKIP
PASS (lce): 15 layer checks on 100 input(s), ...
"""

from deploy.certify.bounds import CertifyError
from deploy.certify.check import Certificate, LayerCheck, certify

__all__ = ["certify", "Certificate", "LayerCheck", "CertifyError"]
