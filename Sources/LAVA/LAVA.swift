// The LAVA paper's certified methods: one file per method, named as in the paper.

import Certification
import Ops
import Tensor

/// Every LAVA protocol entry, registered by CertifyMethods.registerAll().
public let lavaMethods: [Method] = []
