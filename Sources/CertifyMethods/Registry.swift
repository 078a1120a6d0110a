// Registers every certified method with `Registry.shared`. One entry per protocol id; each
// paper's folder holds one file per method.

import Certification
import IADG
import InputGradients
import LAVA
import NRRDD

/// All methods, grouped by paper.
public let allMethods: [Method] = coreMethods + iadgMethods + inputGradientsMethods + lavaMethods + nrrddMethods

private let registered: Void = {
    for m in allMethods { Registry.shared.register(m) }
}()

/// Registers every method once (idempotent, thread-safe through Swift's lazy globals).
public func registerAll() { _ = registered }
