// The InputGradients paper's certified methods: one file per method, named as in the paper.

import Certification
import Ops
import Tensor

/// Every InputGradients protocol entry, registered by CertifyMethods.registerAll().
public let inputGradientsMethods: [Method] = []
