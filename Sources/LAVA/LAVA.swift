// The LAVA paper's certified methods: one file per method, named as in the paper.
// Di Pierno, Guarnera, Allegra, Battiato, "Towards Reliable Audio Deepfake Attribution and Model Recognition:
// A Multi-Level Autoencoder-Based Framework", DFF@ACM MM 2025; code github.com/adipiz99/LAVA-framework.

import Certification
import Ops
import Tensor

/// Every LAVA protocol entry, registered by CertifyMethods.registerAll().
public let lavaMethods: [Method] = [autoencoderMethod, headsMethod, metricsMethod, officialModelsMethod, rejectionMethod, resampleMethod]
