// The IADG paper's certified methods: one file per method, named as in the paper.
// Zhou et al., "Instance-Aware Domain Generalization for Face Anti-Spoofing", CVPR 2023;
// official code qianyuzqy/IADG (a7110c2). Options where paper and code differ default to the code.

import Certification
import Ops
import Tensor

/// Every IADG protocol entry, registered by CertifyMethods.registerAll().
public let iadgMethods: [Method] = [metricsMethod, aiawMethod, csaMethod, fpsMethod, dkgMethod, networkMethod]
