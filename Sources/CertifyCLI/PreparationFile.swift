// PLAN.units/prepare.bin, the shared preparation of a plan (`certify audit`'s data and attributions, `certify
// distill`'s teacher): a magic line, one line of JSON header (naming the plan's config hash and each tensor's name
// and shape), the tensors as little-endian float64, then the SHA-256 of all that.

import Certification
import Foundation
import Tensor

enum PreparationFile {
    /// A tensor's name and shape in the header.
    struct Entry: Codable { var name: String; var shape: [Int] }

    /// The file's bytes: `header` must list `tensors`' names and shapes in this order.
    static func encode<H: Encodable>(magic: Data, header: H, tensors: [Tensor]) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        var d = magic
        d.append(try enc.encode(header))
        d.append(0x0A)
        for t in tensors {
            t.data.withUnsafeBufferPointer { p in
                var le = p.map { $0.bitPattern.littleEndian }
                d.append(Data(bytes: &le, count: le.count * 8))
            }
        }
        d.append(contentsOf: SHA256.hexBytes(d))
        return d
    }

    /// The header and the tensors by name; throws `PlanError` when the file is not `what` (wrong magic), truncated,
    /// corrupt, or made for another plan than `planHash` (`plan(header)`).
    static func decode<H: Decodable>(_ d: Data, magic: Data, what: String, path: String, planHash: String,
                                     plan: (H) -> String, entries: (H) -> [Entry]) throws -> (H, [String: Tensor]) {
        guard d.count > magic.count + 32, d.prefix(magic.count) == magic else { throw PlanError("\(path): not \(what) (or truncated)") }
        let body = d.prefix(d.count - 32)
        guard Data(SHA256.hexBytes(body)) == d.suffix(32) else {
            throw PlanError("\(path): truncated or corrupt (checksum mismatch); delete it and run `certify work PLAN --prepare` again")
        }
        guard let nl = body[magic.count...].firstIndex(of: 0x0A) else { throw PlanError("\(path): corrupt header") }
        let header: H
        do { header = try JSONDecoder().decode(H.self, from: body[magic.count..<nl]) } catch {
            throw PlanError("\(path): corrupt header (\(readableError(error)))")
        }
        let made = plan(header)
        guard made == planHash else { throw PlanError("\(path): made for another plan (config hash \(made.prefix(12)), the plan's is \(planHash.prefix(12)))") }
        var offset = nl + 1
        var t: [String: Tensor] = [:]
        for a in entries(header) {
            var n = 1
            for s in a.shape {
                let (m, overflow) = n.multipliedReportingOverflow(by: s)
                guard s >= 0, !overflow, m <= (body.endIndex - offset) / 8 else { throw PlanError("\(path): tensor \(a.name) runs past the end") }
                n = m
            }
            guard offset + 8 * n <= body.endIndex else { throw PlanError("\(path): tensor \(a.name) runs past the end") }
            var values = [Double](repeating: 0, count: n)
            body[offset..<(offset + 8 * n)].withUnsafeBytes { raw in
                for i in 0..<n { values[i] = Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))) }
            }
            t[a.name] = Tensor(unchecked: a.shape, values)
            offset += 8 * n
        }
        guard offset == body.endIndex else { throw PlanError("\(path): \(body.endIndex - offset) bytes after the last tensor") }
        return (header, t)
    }
}

extension SHA256 {
    static func hexBytes<D: DataProtocol>(_ d: D) -> [UInt8] {
        var s = SHA256()
        s.update(d)
        return s.finalize()
    }
}
