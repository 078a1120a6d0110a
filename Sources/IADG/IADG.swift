// The IADG paper's certified methods: one file per method, named as in the paper.

import Certification
import Ops
import Tensor

/// Every IADG protocol entry, registered by CertifyMethods.registerAll().
public let iadgMethods: [Method] = []
