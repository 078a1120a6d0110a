// The InputGradients paper's certified methods: one file per method, named as in the paper.
// Shah, Jain & Netrapalli, "Do Input Gradients Highlight Discriminative Features?" (NeurIPS 2021);
// official code github.com/harshays/inputgradients (arXiv v1 version; no BlockMNIST, no retraining).

import Certification
import Ops
import Tensor

/// Every InputGradients protocol entry, registered by CertifyMethods.registerAll().
public let inputGradientsMethods: [Method] = [
    masksMethod, localizationMethod, blockMNISTMethod, diffROARMethod, attributionsMethod, pgdMethod, roadMethod,
]
