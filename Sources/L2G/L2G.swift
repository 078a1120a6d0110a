// Local2Global (L2G) query alignment for online video instance segmentation: the certified parts.
// Koner, Wang, Parthasarathy, Chen, "Local2Global query Alignment for Video Instance Segmentation", arXiv 2507.20120 (2025).
// No official code is public: the metric, the matching and the losses are exact (YouTube-VIS evaluation, Mask2Former
// conventions); the aligner and the propagation loop are parameterised, every architectural choice an assumption.

import Certification

/// Every L2G protocol entry, registered by CertifyMethods.registerAll().
public let l2gMethods: [Method] = [visAPMethod, matcherMethod, lossesMethod, alignerMethod, propagationMethod]
