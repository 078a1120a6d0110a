// One-line, actionable text for errors that come from Foundation or Codable, whose own descriptions
// ("The operation could not be completed. (NSCocoaErrorDomain error 4.)", "typeMismatch(Swift.String,
// Swift.DecodingError.Context(codingPath: …") name neither the problem nor where it is.

import Foundation

/// A short description of a file-system or decoding error: the reason (from errno where there is one)
/// and, for decoding, the path of the offending key.
public func readableError(_ error: Error) -> String {
    if let d = error as? DecodingError {
        func path(_ keys: [CodingKey]) -> String {
            let p = keys.map { k in k.intValue.map { "[\($0)]" } ?? ".\(k.stringValue)" }.joined()
            return p.hasPrefix(".") ? String(p.dropFirst()) : (p.isEmpty ? "top level" : p)
        }
        switch d {
        case .typeMismatch(let t, let c): return "at \(path(c.codingPath)): expected \(t)"
        case .valueNotFound(let t, let c): return "at \(path(c.codingPath)): missing value of type \(t)"
        case .keyNotFound(let k, let c): return "at \(path(c.codingPath)): missing key '\(k.stringValue)'"
        case .dataCorrupted(let c): return "at \(path(c.codingPath)): \(c.debugDescription)"
        @unknown default: return "cannot decode"
        }
    }
    let ns = error as NSError
    if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
    if let u = ns.userInfo[NSUnderlyingErrorKey] as? NSError, u.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(u.code)))
    }
    if ns.domain == NSCocoaErrorDomain {
        switch ns.code {
        case NSFileNoSuchFileError, NSFileReadNoSuchFileError: return "no such file or directory"
        case NSFileReadNoPermissionError, NSFileWriteNoPermissionError: return "permission denied"
        case NSFileWriteOutOfSpaceError: return "no space left on the device"
        case NSFileWriteVolumeReadOnlyError: return "read-only file system"
        case NSFileWriteFileExistsError: return "a file already exists there"
        case NSFileReadCorruptFileError: return "the file is corrupt or not in the expected format"
        case NSFileReadInapplicableStringEncodingError: return "the file is not valid UTF-8 text"
        default: return ns.localizedFailureReason ?? "file error \(ns.code)"
        }
    }
    return "\(error)"
}
