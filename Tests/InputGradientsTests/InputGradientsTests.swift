import Testing
@testable import InputGradients
