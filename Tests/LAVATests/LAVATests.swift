import Testing
@testable import LAVA
