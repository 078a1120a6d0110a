import Testing
@testable import IADG
