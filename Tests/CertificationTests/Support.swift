import Certification
import CertifyMethods
import Foundation

/// The package's protocols, loaded once.
let protocolSet: ProtocolSet = {
    registerAll()
    return try! ProtocolSet.load(root: packageRoot())
}()

/// Every protocol certified once per test process (shared by the per-protocol tests and the CHECKLIST check).
let certifiedReports: [String: ProtocolReport] = {
    final class Box: @unchecked Sendable {
        var reports: [String: ProtocolReport] = [:]
        let lock = NSLock()
    }
    let box = Box()
    DispatchQueue.concurrentPerform(iterations: protocolSet.protocols.count) { i in
        let p = protocolSet.protocols[i]
        let r = Certifier.certify(p, in: protocolSet)
        box.lock.lock()
        box.reports[p.id] = r
        box.lock.unlock()
    }
    return box.reports
}()

let allProtocolIDs: [String] = protocolSet.protocols.map(\.id)

/// (protocol id, property id) for every declared property.
let allProperties: [String] = protocolSet.protocols.flatMap { p in p.properties.map { "\(p.id)#\($0.id)" } }

func tempPath(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("certify-tests-\(getpid())")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}
