// Registers every certified method with `Registry.shared`. One entry per protocol id; each
// paper's folder holds one file per method.

import Certification
import DARTSGT
import IADG
import InputGradients
import LAVA
import L2G
import NRRDD

/// All methods, grouped by paper.
public let allMethods: [Method] = coreMethods + iadgMethods + inputGradientsMethods + lavaMethods + nrrddMethods + dartsgtMethods + l2gMethods

private let registered: Void = {
    for m in allMethods { Registry.shared.register(m) }
}()

/// Registers every method once (idempotent, thread-safe through Swift's lazy globals).
public func registerAll() { _ = registered }
