import Foundation
import Testing
import Certification
import Tensor
@testable import LAVA

@Test func timing() throws {
    for p in autoencoderMethod.properties {
        let t0 = Date()
        let r = Certifier.runProperty(p, protocolID: "lava.autoencoder", trials: 5)
        print(p.id, r.passed, Date().timeIntervalSince(t0))
    }
}
